{{ config(materialized='incremental', unique_key=['account_id', 'subscription_id']) }}

with

source as (
    select
        account_id,
        source_extracted_at,
        source_event_count,
        -- The fields read: stripe_fields.subscriptions in dbt_project.yml.
        object as stripe_subscription
    from {{ stripe_object_state(
        'subscriptions', staged_id='subscription_id', fields=var('stripe_fields')['subscriptions']
    ) }} as stripe_objects
),

final as (
    select
        account_id,
        stripe_subscription.id as subscription_id,
        stripe_subscription.customer as customer_id,
        {{ from_unix_seconds('stripe_subscription.created') }} as created_at,
        stripe_subscription.status,
        lower(stripe_subscription.currency) as currency,
        {{ from_unix_seconds('stripe_subscription.start_date') }} as started_at,
        {{ from_unix_seconds('stripe_subscription.trial_start') }} as trial_started_at,
        {{ from_unix_seconds('stripe_subscription.trial_end') }} as trial_ended_at,
        {{ from_unix_seconds('stripe_subscription.canceled_at') }} as canceled_at,
        {{ from_unix_seconds('stripe_subscription.ended_at') }} as ended_at,
        stripe_subscription.cancel_at_period_end,
        stripe_subscription.latest_invoice as latest_invoice_id,
        stripe_subscription.items.total_count as item_count,
        source.source_extracted_at,
        source.source_event_count,
        {{ build_started_at() }} as staged_at
    from source
)

select * from final
