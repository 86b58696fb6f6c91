{{ config(materialized='incremental', unique_key=['account_id', 'refund_id']) }}

with

source as (
    select
        account_id,
        source_extracted_at,
        source_event_count,
        -- The fields read: stripe_fields.refunds in dbt_project.yml.
        object as refund
    from {{ stripe_object_state(
        'refunds', staged_id='refund_id', fields=var('stripe_fields')['refunds']
    ) }} as stripe_objects
),

currencies as (
    select * from {{ ref('currency_exponents') }}
),

final as (
    select
        source.account_id,
        source.refund.id as refund_id,
        source.refund.charge as charge_id,
        source.refund.payment_intent as payment_intent_id,
        source.refund.balance_transaction as balance_transaction_id,
        {{ from_unix_seconds('source.refund.created') }} as created_at,
        source.refund.status,
        source.refund.reason,
        lower(source.refund.currency) as currency,
        currencies.exponent as currency_exponent,
        source.refund.amount as amount_minor,
        {{ to_major_units('source.refund.amount') }} as amount,
        nullif(source.refund.metadata.resourceid, '') as metadata_order_id,
        currencies.currency is null as is_unknown_currency,
        source.source_extracted_at,
        source.source_event_count,
        {{ build_started_at() }} as staged_at
    from source
    left join currencies on lower(source.refund.currency) = currencies.currency
)

select * from final
