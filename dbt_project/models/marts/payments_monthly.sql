{#- Payment statistics per UTC month, account and presentment currency, at payment-intent
    grain: payments, succeeded, failed, uncaptured (its own bucket), success rate =
    succeeded / (succeeded + failed), charge attempts, and the amounts processed. -#}
with

intents as (
    select * from {{ ref('fct_payment_intents') }}
),

currencies as (
    select * from {{ ref('currency_exponents') }}
),

monthly as (
    select
        account_id,
        cast({{ dbt.date_trunc('month', utc_date('created_at')) }} as date) as payment_month,
        currency,
        count(*) as payment_count,
        sum(case when outcome = 'succeeded' then 1 else 0 end) as succeeded_count,
        sum(case when outcome = 'failed' then 1 else 0 end) as failed_count,
        sum(case when outcome = 'uncaptured' then 1 else 0 end) as uncaptured_count,
        sum(case when outcome = 'canceled' then 1 else 0 end) as canceled_count,
        sum(case when outcome = 'in_progress' then 1 else 0 end) as in_progress_count,
        sum(attempt_count) as attempt_count,
        sum(case when outcome = 'succeeded' then amount_received_minor else 0 end)
            as processed_minor,
        sum(case when outcome = 'failed' then amount_minor else 0 end) as failed_minor,
        sum(case when outcome = 'uncaptured' then amount_minor else 0 end) as uncaptured_minor
    from intents
    group by
        account_id,
        cast({{ dbt.date_trunc('month', utc_date('created_at')) }} as date),
        currency
),

final as (
    select
        monthly.*,
        case
            when monthly.succeeded_count + monthly.failed_count > 0
                then
                    cast(monthly.succeeded_count as double)
                    / (monthly.succeeded_count + monthly.failed_count)
        end as success_rate,
        {{ to_major_units('monthly.processed_minor') }} as processed
    from monthly
    left join currencies on monthly.currency = currencies.currency
)

select * from final
