{{ config(meta={'dagster': {'ref': {'name': 'mrr_monthly'}}}) }}

-- Each month's MRR is the previous month's plus new, expansion and reactivation, less
-- contraction and churn.
select
    account_id,
    mrr_month,
    currency,
    mrr_minor,
    starting_mrr_minor
from {{ ref('mrr_monthly') }}
where
    mrr_minor
    != starting_mrr_minor + new_mrr_minor + expansion_mrr_minor + reactivation_mrr_minor
    - contraction_mrr_minor - churned_mrr_minor
