{{ config(
    materialized='incremental',
    unique_key=['account_id', 'customer_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
) }}

{#- One row per Stripe customer and presentment currency they paid in (a customer with no
    payment has one row with no currency): first and last payment, lifetime gross, refunds,
    fees and net, payment and failure counts, active subscriptions.

    Incremental: a build after the first computes again, in every currency, only the
    customers something changed for since this table's last build (`built_at`): the
    customer or one of their subscriptions staged again, or one of their charges computed
    again in fct_charges. A charge's or subscription's customer is set once (Stripe only
    lets a charge without one be given one), so no change takes a row away from another
    customer. A change to this model rebuilds it in full (macros/incremental.sql). -#}
{%- set incremental = is_incremental() %}
with

{% if incremental -%}
changed_customers as (
    select account_id, customer_id
    from {{ ref('stg_stripe__customers') }}
    where {{ staged_since_last_build() }}
    union
    select account_id, customer_id
    from {{ ref('stg_stripe__subscriptions') }}
    where {{ staged_since_last_build() }} and customer_id is not null
    union
    select account_id, customer_id
    from {{ ref('fct_charges') }}
    where {{ staged_since_last_build(column='built_at') }} and customer_id is not null
),

{% endif -%}
customers as (
    select staged.* from {{ ref('stg_stripe__customers') }} as staged
    {%- if incremental %}
    where {{ keys_in('staged', 'changed_customers', ['account_id', 'customer_id']) }}
    {%- endif %}
),

charges as (
    select computed.* from {{ ref('fct_charges') }} as computed
    {%- if incremental %}
    where {{ keys_in('computed', 'customers', ['account_id', 'customer_id']) }}
    {%- endif %}
),

subscriptions as (
    select staged.* from {{ ref('stg_stripe__subscriptions') }} as staged
    {%- if incremental %}
    where {{ keys_in('staged', 'customers', ['account_id', 'customer_id']) }}
    {%- endif %}
),

payments as (
    select
        account_id,
        customer_id,
        currency,
        min(case when captured then created_at end) as first_payment_at,
        max(case when captured then created_at end) as last_payment_at,
        sum(case when captured then 1 else 0 end) as payment_count,
        sum(case when status = 'failed' then 1 else 0 end) as failed_payment_count,
        sum(case when captured then amount_minor else 0 end) as lifetime_gross_minor,
        sum(case when captured then amount_refunded_minor else 0 end)
            as lifetime_refunded_minor,
        -- The currency the settled charges reached the balance in (one per presentment
        -- currency of an account, tests/assert_customer_charges_settle_in_one_currency.sql);
        -- max() and not any_value(), which DuckDB answers with whichever row comes first,
        -- a charge not settled yet (null) as well.
        max(settlement_currency) as settlement_currency,
        sum(coalesce(fee_minor, 0)) as lifetime_fees_minor,
        sum(coalesce(net_minor, 0)) as lifetime_net_before_refunds_minor
    from charges
    where customer_id is not null
    group by account_id, customer_id, currency
),

active_subscriptions as (
    select
        account_id,
        customer_id,
        count(*) as active_subscription_count
    from subscriptions
    where status in ('active', 'past_due', 'trialing')
    group by account_id, customer_id
),

final as (
    select
        customers.account_id,
        customers.customer_id,
        customers.email,
        customers.name,
        customers.country,
        customers.created_at,
        customers.is_deleted,
        payments.currency,
        payments.first_payment_at,
        payments.last_payment_at,
        coalesce(payments.payment_count, 0) as payment_count,
        coalesce(payments.failed_payment_count, 0) as failed_payment_count,
        coalesce(payments.lifetime_gross_minor, 0) as lifetime_gross_minor,
        coalesce(payments.lifetime_refunded_minor, 0) as lifetime_refunded_minor,
        payments.settlement_currency,
        coalesce(payments.lifetime_fees_minor, 0) as lifetime_fees_minor,
        coalesce(payments.lifetime_net_before_refunds_minor, 0)
            as lifetime_net_before_refunds_minor,
        coalesce(active_subscriptions.active_subscription_count, 0) as active_subscription_count,
        {{ build_started_at() }} as built_at
    from customers
    left join payments
        on
            customers.account_id = payments.account_id
            and customers.customer_id = payments.customer_id
    left join active_subscriptions
        on
            customers.account_id = active_subscriptions.account_id
            and customers.customer_id = active_subscriptions.customer_id
)

select * from final
