{{ config(materialized='incremental', unique_key=['account_id', 'charge_id']) }}

with

source as (
    select
        account_id,
        source_extracted_at,
        source_event_count,
        livemode,
        -- The fields read: stripe_fields.charges in dbt_project.yml.
        object as charge
    from {{ stripe_object_state(
        'charges', staged_id='charge_id', fields=var('stripe_fields')['charges']
    ) }} as stripe_objects
),

currencies as (
    select * from {{ ref('currency_exponents') }}
),

final as (
    select
        source.account_id,
        source.charge.id as charge_id,
        {{ from_unix_seconds('source.charge.created') }} as created_at,
        source.charge.status,
        source.charge.captured,
        source.charge.paid,
        source.charge.refunded,
        source.charge.disputed,
        lower(source.charge.currency) as currency,
        currencies.exponent as currency_exponent,
        source.charge.amount as amount_minor,
        {{ to_major_units('source.charge.amount') }} as amount,
        source.charge.amount_captured as amount_captured_minor,
        source.charge.amount_refunded as amount_refunded_minor,
        {{ to_major_units('source.charge.amount_refunded') }} as amount_refunded,
        source.charge.customer as customer_id,
        source.charge.payment_intent as payment_intent_id,
        source.charge.balance_transaction as balance_transaction_id,
        nullif(source.charge.metadata.resourceid, '') as order_id,
        nullif(source.charge.metadata.category, '') as metadata_category,
        source.charge.description,
        coalesce(source.charge.receipt_email, source.charge.billing_details.email) as email,
        source.charge.billing_details.name as billing_name,
        source.charge.failure_code,
        source.charge.failure_message,
        source.charge.outcome.reason as decline_code,
        source.charge.payment_method_details.type as payment_method_type,
        source.charge.payment_method_details.card.brand as card_brand,
        source.charge.payment_method_details.card.funding as card_funding,
        source.charge.payment_method_details.card.country as card_country,
        source.livemode,
        currencies.currency is null as is_unknown_currency,
        source.source_extracted_at,
        source.source_event_count,
        {{ build_started_at() }} as staged_at
    from source
    left join currencies on lower(source.charge.currency) = currencies.currency
)

select * from final
