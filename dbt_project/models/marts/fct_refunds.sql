{#- One row per refund, with its charge and order and what it took from the balance. -#}
with

refunds as (
    select * from {{ ref('stg_stripe__refunds') }}
),

charges as (
    select * from {{ ref('stg_stripe__charges') }}
),

refund_balance as (
    select * from {{ ref('stg_stripe__balance_transactions') }}
    where type in ('refund', 'payment_refund')
),

final as (
    select
        refunds.account_id,
        refunds.refund_id,
        refunds.charge_id,
        coalesce(charges.order_id, refunds.metadata_order_id) as order_id,
        refunds.created_at,
        refunds.status,
        refunds.reason,
        refunds.currency,
        refunds.amount_minor,
        refunds.amount,
        charges.amount_minor as charge_amount_minor,
        refunds.amount_minor = charges.amount_minor as is_full_refund,
        charges.created_at as charge_created_at,
        {{ dbt.datediff('charges.created_at', 'refunds.created_at', 'day') }}
            as days_from_charge_to_refund,
        {{ dbt.date_trunc('month', utc_date('charges.created_at')) }} as charge_month,
        {{ dbt.date_trunc('month', utc_date('refunds.created_at')) }} as refund_month,
        refund_balance.currency as settlement_currency,
        -refund_balance.amount_minor as settlement_amount_minor,
        -refund_balance.amount as settlement_amount,
        refunds.balance_transaction_id
    from refunds
    left join charges
        on
            refunds.account_id = charges.account_id
            and refunds.charge_id = charges.charge_id
    left join refund_balance
        on
            refunds.account_id = refund_balance.account_id
            and refunds.balance_transaction_id = refund_balance.balance_transaction_id
)

select * from final
