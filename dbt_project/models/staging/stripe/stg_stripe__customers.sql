{{ config(materialized='incremental', unique_key=['account_id', 'customer_id']) }}

with

source as (
    select
        account_id,
        source_extracted_at,
        source_event_count,
        object_deleted,
        -- The fields read: stripe_fields.customers in dbt_project.yml.
        object as customer
    from {{ stripe_object_state(
        'customers', staged_id='customer_id', fields=var('stripe_fields')['customers']
    ) }} as stripe_objects
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
        source.source_event_count,
        {{ build_started_at() }} as staged_at
    from source
)

select * from final
