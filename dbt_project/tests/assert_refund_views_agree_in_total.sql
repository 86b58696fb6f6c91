{{ config(meta={'dagster': {'ref': {'name': 'revenue_monthly'}}}) }}

-- Period and cohort views book the same refunds in different months: in total they agree.
select
    account_id,
    currency,
    sum(refunds_period_minor) as period_total,
    sum(refunds_cohort_minor) as cohort_total
from {{ ref('revenue_monthly') }}
group by account_id, currency
having sum(refunds_period_minor) != sum(refunds_cohort_minor)
