{{ config(materialized='incremental', unique_key=['account_id', 'customer_id']) }}

with

source as (
    select
        account_id,
        source_extracted_at,
        source_event_count,
        object_deleted,
        {{ parse_json('payload', {
            'id': 'varchar',
            'created': 'bigint',
            'email': 'varchar',
            'name': 'varchar',
            'currency': 'varchar',
            'deleted': 'boolean',
            'delinquent': 'boolean',
            'address': {'country': 'varchar'}
        }) }} as customer
    from {{ stripe_object_state('customers', staged_id='customer_id') }} as stripe_objects
),

final as (
    select
        account_id,
        customer.id as customer_id,
        {{ from_unix_seconds('customer.created') }} as created_at,
        lower(customer.email) as email,
        customer.name,
        lower(customer.currency) as currency,
        customer.address.country,
        coalesce(customer.delinquent, false) as is_delinquent,
        coalesce(customer.deleted, false) or object_deleted as is_deleted,
        source.source_extracted_at,
        source.source_event_count
    from source
)

select * from final
