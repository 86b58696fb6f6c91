{{ config(meta={'dagster': {'ref': {'name': 'revenue_daily'}}}) }}

-- The revenue mart's totals per account and currency equal the charge and refund marts'.
with

revenue as (
    select
        account_id,
        currency,
        sum(gross_minor) as gross_minor,
        sum(refunds_minor) as refunds_minor
    from {{ ref('revenue_daily') }}
    group by account_id, currency
),

charges as (
    select
        account_id,
        settlement_currency as currency,
        sum(settlement_amount_minor) as gross_minor
    from {{ ref('fct_charges') }}
    where balance_transaction_id is not null
    group by account_id, settlement_currency
),

refunds as (
    select
        account_id,
        settlement_currency as currency,
        sum(settlement_amount_minor) as refunds_minor
    from {{ ref('fct_refunds') }}
    where balance_transaction_id is not null
    group by account_id, settlement_currency
)

select
    revenue.account_id,
    revenue.currency,
    revenue.gross_minor,
    charges.gross_minor as charges_gross_minor,
    revenue.refunds_minor,
    refunds.refunds_minor as refunds_refunds_minor
from revenue
left join charges
    on revenue.account_id = charges.account_id and revenue.currency = charges.currency
left join refunds
    on revenue.account_id = refunds.account_id and revenue.currency = refunds.currency
where
    revenue.gross_minor != coalesce(charges.gross_minor, 0)
    or revenue.refunds_minor != coalesce(refunds.refunds_minor, 0)
