{#- Succeeded refunds per UTC month, account, currency and reason (no reason given is
    'unspecified'), full or partial. -#}
with

refunds as (
    select * from {{ ref('fct_refunds') }}
    where status = 'succeeded'
),

final as (
    select
        account_id,
        cast(refund_month as date) as refund_month,
        currency,
        coalesce(reason, 'unspecified') as reason,
        count(*) as refund_count,
        sum(case when is_full_refund then 1 else 0 end) as full_refund_count,
        sum(amount_minor) as refunded_minor
    from refunds
    group by account_id, cast(refund_month as date), currency, coalesce(reason, 'unspecified')
)

select * from final
