{#- Revenue per UTC day, account and settlement currency, from balance transactions.
    Refunds and disputes are booked on the day they hit the balance (the period view);
    amounts of different currencies are never added together. -#}
with

balance as (
    select * from {{ ref('stg_stripe__balance_transactions') }}
    -- Money movements of the business, not transfers of its balance to the bank.
    where reporting_category not in (
        'payout', 'payout_reversal', 'transfer', 'transfer_reversal', 'topup', 'topup_reversal'
    )
),

currencies as (
    select * from {{ ref('currency_exponents') }}
),

daily as (
    select
        account_id,
        {{ utc_date('created_at') }} as revenue_date,
        currency,
        sum(case when type in ('charge', 'payment') then amount_minor else 0 end)
            as gross_minor,
        -sum(case when type in ('refund', 'payment_refund') then amount_minor else 0 end)
            as refunds_minor,
        -sum(
            case
                when reporting_category in ('dispute', 'dispute_reversal') then amount_minor
                else 0
            end
        ) as disputes_minor,
        sum(fee_minor) as fees_minor,
        sum(net_minor) as net_minor,
        sum(case when type in ('charge', 'payment') then 1 else 0 end) as charge_count,
        sum(case when type in ('refund', 'payment_refund') then 1 else 0 end) as refund_count
    from balance
    group by account_id, {{ utc_date('created_at') }}, currency
),

final as (
    select
        daily.account_id,
        daily.revenue_date,
        daily.currency,
        daily.gross_minor,
        daily.refunds_minor,
        daily.disputes_minor,
        daily.fees_minor,
        daily.net_minor,
        {{ to_major_units('daily.gross_minor') }} as gross,
        {{ to_major_units('daily.refunds_minor') }} as refunds,
        {{ to_major_units('daily.disputes_minor') }} as disputes,
        {{ to_major_units('daily.fees_minor') }} as fees,
        {{ to_major_units('daily.net_minor') }} as net,
        daily.charge_count,
        daily.refund_count
    from daily
    left join currencies on daily.currency = currencies.currency
)

select * from final
