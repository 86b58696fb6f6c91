{{ config(materialized='incremental', unique_key=['account_id', 'payment_intent_id']) }}

with

source as (
    select
        account_id,
        source_extracted_at,
        source_event_count,
        -- The fields read: stripe_fields.payment_intents in dbt_project.yml.
        object as intent
    from {{ stripe_object_state(
        'payment_intents',
        staged_id='payment_intent_id',
        fields=var('stripe_fields')['payment_intents']
    ) }} as stripe_objects
),

currencies as (
    select * from {{ ref('currency_exponents') }}
),

final as (
    select
        source.account_id,
        source.intent.id as payment_intent_id,
        {{ from_unix_seconds('source.intent.created') }} as created_at,
        source.intent.status,
        source.intent.capture_method,
        lower(source.intent.currency) as currency,
        source.intent.amount as amount_minor,
        {{ to_major_units('source.intent.amount') }} as amount,
        source.intent.amount_received as amount_received_minor,
        source.intent.customer as customer_id,
        source.intent.latest_charge as latest_charge_id,
        nullif(source.intent.metadata.resourceid, '') as order_id,
        source.intent.last_payment_error.code as last_error_code,
        source.intent.last_payment_error.decline_code as last_decline_code,
        currencies.currency is null as is_unknown_currency,
        source.source_extracted_at,
        source.source_event_count,
        {{ build_started_at() }} as staged_at
    from source
    left join currencies on lower(source.intent.currency) = currencies.currency
)

select * from final
