{#- Revenue per UTC month, account and settlement currency. Refunds in two views, labelled:
    refunds_period_minor books a refund in the month it hit the balance (so gross - refunds
    - disputes - fees = net within the month); refunds_cohort_minor books it against the
    month of the charge it refunds (what share of a month's sales came back). -#}
with

daily as (
    select * from {{ ref('revenue_daily') }}
),

refunds as (
    select * from {{ ref('fct_refunds') }}
    -- Settled refunds only: one a webhook announced counts once its balance transaction
    -- is loaded (the next incremental run), as in revenue_daily.
    where settlement_currency is not null
),

currencies as (
    select * from {{ ref('currency_exponents') }}
),

period as (
    select
        account_id,
        cast({{ dbt.date_trunc('month', 'revenue_date') }} as date) as revenue_month,
        currency,
        sum(gross_minor) as gross_minor,
        sum(refunds_minor) as refunds_period_minor,
        sum(disputes_minor) as disputes_minor,
        sum(fees_minor) as fees_minor,
        sum(estimated_fees_minor) as estimated_fees_minor,
        sum(net_minor) as net_minor,
        sum(charge_count) as charge_count,
        sum(refund_count) as refund_count
    from daily
    group by account_id, cast({{ dbt.date_trunc('month', 'revenue_date') }} as date), currency
),

cohort as (
    select
        account_id,
        cast(charge_month as date) as revenue_month,
        settlement_currency as currency,
        sum(settlement_amount_minor) as refunds_cohort_minor
    from refunds
    group by account_id, cast(charge_month as date), settlement_currency
),

combined as (
    select
        coalesce(period.account_id, cohort.account_id) as account_id,
        coalesce(period.revenue_month, cohort.revenue_month) as revenue_month,
        coalesce(period.currency, cohort.currency) as currency,
        coalesce(period.gross_minor, 0) as gross_minor,
        coalesce(period.refunds_period_minor, 0) as refunds_period_minor,
        coalesce(cohort.refunds_cohort_minor, 0) as refunds_cohort_minor,
        coalesce(period.disputes_minor, 0) as disputes_minor,
        coalesce(period.fees_minor, 0) as fees_minor,
        coalesce(period.estimated_fees_minor, 0) as estimated_fees_minor,
        coalesce(period.net_minor, 0) as net_minor,
        coalesce(period.charge_count, 0) as charge_count,
        coalesce(period.refund_count, 0) as refund_count
    from period
    full outer join cohort
        on
            period.account_id = cohort.account_id
            and period.revenue_month = cohort.revenue_month
            and period.currency = cohort.currency
),

final as (
    select
        combined.*,
        {{ to_major_units('combined.gross_minor') }} as gross,
        {{ to_major_units('combined.refunds_period_minor') }} as refunds_period,
        {{ to_major_units('combined.refunds_cohort_minor') }} as refunds_cohort,
        {{ to_major_units('combined.disputes_minor') }} as disputes,
        {{ to_major_units('combined.fees_minor') }} as fees,
        {{ to_major_units('combined.net_minor') }} as net
    from combined
    left join currencies on combined.currency = currencies.currency
)

select * from final
