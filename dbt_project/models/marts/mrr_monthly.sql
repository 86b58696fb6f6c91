{#- MRR per UTC month, account and currency with its movements (new, expansion,
    contraction, churn, reactivation), active subscriptions and customers, customer churn
    rate (customers who churned / customers with MRR at the month's start) and gross
    revenue churn rate ((churned + contraction MRR) / MRR at the month's start). -#}
with

customers as (
    select * from {{ ref('mrr_by_customer_monthly') }}
),

final as (
    select
        account_id,
        mrr_month,
        currency,
        sum(mrr_minor) as mrr_minor,
        sum(previous_mrr_minor) as starting_mrr_minor,
        sum(case when mrr_movement = 'new' then mrr_change_minor else 0 end) as new_mrr_minor,
        sum(case when mrr_movement = 'expansion' then mrr_change_minor else 0 end)
            as expansion_mrr_minor,
        -sum(case when mrr_movement = 'contraction' then mrr_change_minor else 0 end)
            as contraction_mrr_minor,
        -sum(case when mrr_movement = 'churn' then mrr_change_minor else 0 end)
            as churned_mrr_minor,
        sum(case when mrr_movement = 'reactivation' then mrr_change_minor else 0 end)
            as reactivation_mrr_minor,
        sum(active_subscription_count) as active_subscription_count,
        sum(case when mrr_minor > 0 then 1 else 0 end) as active_customer_count,
        sum(case when previous_mrr_minor > 0 then 1 else 0 end) as starting_customer_count,
        sum(case when mrr_movement = 'churn' then 1 else 0 end) as churned_customer_count,
        cast(sum(case when mrr_movement = 'churn' then 1 else 0 end) as double)
        / nullif(sum(case when previous_mrr_minor > 0 then 1 else 0 end), 0)
            as customer_churn_rate,
        cast(
            -sum(
                case
                    when mrr_movement in ('churn', 'contraction') then mrr_change_minor
                    else 0
                end
            ) as double
        )
        / nullif(sum(previous_mrr_minor), 0) as gross_revenue_churn_rate
    from customers
    group by account_id, mrr_month, currency
)

select * from final
