{#- One row per Stripe customer and presentment currency they paid in (a customer with no
    payment has one row with no currency): first and last payment, lifetime gross, refunds,
    fees and net, payment and failure counts, active subscriptions. -#}
with

customers as (
    select * from {{ ref('stg_stripe__customers') }}
),

charges as (
    select * from {{ ref('fct_charges') }}
),

subscriptions as (
    select * from {{ ref('stg_stripe__subscriptions') }}
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
        {{ dbt.any_value("settlement_currency") }} as settlement_currency,
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
        coalesce(active_subscriptions.active_subscription_count, 0) as active_subscription_count
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
