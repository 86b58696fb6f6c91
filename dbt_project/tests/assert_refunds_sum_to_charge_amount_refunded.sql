{{ config(meta={'dagster': {'ref': {'name': 'fct_charges'}}}) }}

-- A charge's amount_refunded is cumulative: it must equal the sum of its succeeded refunds.
with

refunds as (
    select
        account_id,
        charge_id,
        sum(amount_minor) as refunded_minor
    from {{ ref('fct_refunds') }}
    where status = 'succeeded'
    group by account_id, charge_id
)

select
    charges.charge_id,
    charges.amount_refunded_minor,
    coalesce(refunds.refunded_minor, 0) as refunded_minor
from {{ ref('fct_charges') }} as charges
left join refunds
    on
        charges.account_id = refunds.account_id
        and charges.charge_id = refunds.charge_id
where charges.amount_refunded_minor != coalesce(refunds.refunded_minor, 0)
