{#- Revenue per UTC month and settlement currency over every Stripe account the pipeline
    reads (a Connect platform and its connected accounts, or several independent accounts):
    revenue_monthly summed across accounts, never across currencies. -#}
with

monthly as (
    select * from {{ ref('revenue_monthly') }}
),

currencies as (
    select * from {{ ref('currency_exponents') }}
),

totals as (
    select
        revenue_month,
        currency,
        count(distinct account_id) as account_count,
        sum(gross_minor) as gross_minor,
        sum(refunds_period_minor) as refunds_period_minor,
        sum(refunds_cohort_minor) as refunds_cohort_minor,
        sum(disputes_minor) as disputes_minor,
        sum(fees_minor) as fees_minor,
        sum(estimated_fees_minor) as estimated_fees_minor,
        sum(net_minor) as net_minor,
        sum(charge_count) as charge_count,
        sum(refund_count) as refund_count
    from monthly
    group by revenue_month, currency
),

final as (
    select
        totals.*,
        {{ to_major_units('totals.gross_minor') }} as gross,
        {{ to_major_units('totals.refunds_period_minor') }} as refunds_period,
        {{ to_major_units('totals.refunds_cohort_minor') }} as refunds_cohort,
        {{ to_major_units('totals.disputes_minor') }} as disputes,
        {{ to_major_units('totals.fees_minor') }} as fees,
        {{ to_major_units('totals.net_minor') }} as net
    from totals
    left join currencies on totals.currency = currencies.currency
)

select * from final
