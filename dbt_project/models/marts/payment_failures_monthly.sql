{#- Failed charge attempts per UTC month, account, failure code and decline code (retries
    included: every declined attempt is a row here, while payments_monthly counts payments). -#}
with

charges as (
    select * from {{ ref('stg_stripe__charges') }}
    where status = 'failed'
),

final as (
    select
        account_id,
        cast({{ dbt.date_trunc('month', utc_date('created_at')) }} as date) as failure_month,
        coalesce(failure_code, 'unknown') as failure_code,
        coalesce(decline_code, 'none') as decline_code,
        count(*) as failed_attempt_count,
        count(distinct payment_intent_id) as payment_count
    from charges
    group by
        account_id,
        cast({{ dbt.date_trunc('month', utc_date('created_at')) }} as date),
        coalesce(failure_code, 'unknown'),
        coalesce(decline_code, 'none')
)

select * from final
