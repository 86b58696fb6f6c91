{#- One row per charge: its order, its outcome, and what it really earned (the balance
    transaction's amount, fee and net, in the settlement currency). -#}
with

charges as (
    select * from {{ ref('stg_stripe__charges') }}
),

orders as (
    select * from {{ ref('stg_careportals__orders') }}
),

charge_balance as (
    select * from {{ ref('stg_stripe__balance_transactions') }}
    where type in ('charge', 'payment')
),

categories as (
    select * from {{ ref('int_charges_categorised') }}
),

estimated_fees as (
    select * from {{ ref('int_charges_fees_estimated') }}
),

refunds_per_charge as (
    select
        account_id,
        charge_id,
        count(*) as refund_count,
        sum(case when status = 'succeeded' then amount_minor else 0 end)
            as succeeded_refunds_minor
    from {{ ref('stg_stripe__refunds') }}
    group by account_id, charge_id
),

final as (
    select
        charges.account_id,
        charges.charge_id,
        charges.created_at,
        charges.status,
        charges.captured,
        case
            when charges.status = 'failed' then 'failed'
            when charges.status = 'pending' then 'pending'
            when not charges.captured then 'uncaptured'
            when charges.refunded then 'refunded'
            when charges.amount_refunded_minor > 0 then 'partially_refunded'
            else 'succeeded'
        end as outcome,
        charges.currency,
        charges.currency_exponent,
        charges.amount_minor,
        charges.amount,
        charges.amount_refunded_minor,
        charges.amount_refunded,
        coalesce(refunds_per_charge.refund_count, 0) as refund_count,
        charges.order_id,
        orders.order_id is not null as has_known_order,
        orders.status as order_status,
        orders.total_minor as order_total_minor,
        charges.customer_id,
        coalesce(charges.email, orders.customer_email) as email,
        charges.payment_intent_id,
        charges.balance_transaction_id,
        charge_balance.currency as settlement_currency,
        charge_balance.exchange_rate,
        charge_balance.amount_minor as settlement_amount_minor,
        charge_balance.fee_minor,
        charge_balance.stripe_fee_minor,
        charge_balance.application_fee_minor,
        charge_balance.tax_fee_minor,
        estimated_fees.estimated_fee_minor,
        charge_balance.fee_minor - estimated_fees.estimated_fee_minor as fee_estimate_error_minor,
        charge_balance.net_minor,
        charge_balance.amount as settlement_amount,
        charge_balance.fee,
        charge_balance.net,
        categories.category,
        categories.category_source,
        charges.payment_method_type,
        charges.card_brand,
        charges.card_funding,
        charges.card_country,
        charges.failure_code,
        charges.failure_message,
        charges.decline_code,
        charges.description,
        charges.livemode
    from charges
    left join orders on charges.order_id = orders.order_id
    left join charge_balance
        on
            charges.account_id = charge_balance.account_id
            and charges.balance_transaction_id = charge_balance.balance_transaction_id
    left join categories
        on
            charges.account_id = categories.account_id
            and charges.charge_id = categories.charge_id
    left join estimated_fees
        on
            charges.account_id = estimated_fees.account_id
            and charges.charge_id = estimated_fees.charge_id
    left join refunds_per_charge
        on
            charges.account_id = refunds_per_charge.account_id
            and charges.charge_id = refunds_per_charge.charge_id
)

select * from final
