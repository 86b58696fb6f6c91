{#- Refund metrics per UTC month, account and presentment currency, in two labelled views.
    Period: refunds made in the month against the month's gross sales. Cohort: of the
    charges made in the month, what share (by amount and by count) was refunded, whenever.
    Rates by amount = refunded / gross; by count = charges with at least one succeeded
    refund / succeeded charges. -#}
with

charges as (
    select * from {{ ref('fct_charges') }}
    where captured
),

refunds as (
    select * from {{ ref('fct_refunds') }}
    where status = 'succeeded'
),

sales as (
    select
        account_id,
        cast({{ dbt.date_trunc('month', utc_date('created_at')) }} as date) as metric_month,
        currency,
        count(*) as charge_count,
        sum(amount_minor) as gross_minor,
        sum(case when amount_refunded_minor > 0 then 1 else 0 end) as cohort_refunded_charge_count,
        sum(amount_refunded_minor) as cohort_refunded_minor
    from charges
    group by
        account_id,
        cast({{ dbt.date_trunc('month', utc_date('created_at')) }} as date),
        currency
),

period as (
    select
        account_id,
        cast(refund_month as date) as metric_month,
        currency,
        count(*) as refund_count,
        count(distinct charge_id) as period_refunded_charge_count,
        sum(amount_minor) as period_refunded_minor,
        avg(days_from_charge_to_refund) as avg_days_to_refund,
        {{ median("days_from_charge_to_refund") }} as median_days_to_refund
    from refunds
    group by account_id, cast(refund_month as date), currency
),

final as (
    select
        coalesce(sales.account_id, period.account_id) as account_id,
        coalesce(sales.metric_month, period.metric_month) as metric_month,
        coalesce(sales.currency, period.currency) as currency,
        coalesce(sales.charge_count, 0) as charge_count,
        coalesce(sales.gross_minor, 0) as gross_minor,
        coalesce(period.refund_count, 0) as refund_count,
        coalesce(period.period_refunded_minor, 0) as period_refunded_minor,
        coalesce(period.period_refunded_charge_count, 0) as period_refunded_charge_count,
        coalesce(sales.cohort_refunded_minor, 0) as cohort_refunded_minor,
        coalesce(sales.cohort_refunded_charge_count, 0) as cohort_refunded_charge_count,
        cast(period.period_refunded_minor as double) / nullif(sales.gross_minor, 0)
            as period_refund_rate_by_amount,
        cast(period.period_refunded_charge_count as double) / nullif(sales.charge_count, 0)
            as period_refund_rate_by_count,
        cast(sales.cohort_refunded_minor as double) / nullif(sales.gross_minor, 0)
            as cohort_refund_rate_by_amount,
        cast(sales.cohort_refunded_charge_count as double) / nullif(sales.charge_count, 0)
            as cohort_refund_rate_by_count,
        period.avg_days_to_refund,
        period.median_days_to_refund
    from sales
    full outer join period
        on
            sales.account_id = period.account_id
            and sales.metric_month = period.metric_month
            and sales.currency = period.currency
)

select * from final
