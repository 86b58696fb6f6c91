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

estimated_fees as (
    select
        account_id,
        charge_id,
        estimated_fee_minor
    from {{ ref('fct_charges') }}
),

daily as (
    select
        balance.account_id,
        {{ utc_date('balance.created_at') }} as revenue_date,
        balance.currency,
        sum(case when balance.type in ('charge', 'payment') then balance.amount_minor else 0 end)
            as gross_minor,
        -sum(
            case
                when balance.type in ('refund', 'payment_refund') then balance.amount_minor
                else 0
            end
        ) as refunds_minor,
        -sum(
            case
                when balance.reporting_category in ('dispute', 'dispute_reversal')
                    then balance.amount_minor
                else 0
            end
        ) as disputes_minor,
        sum(balance.fee_minor) as fees_minor,
        sum(estimated_fees.estimated_fee_minor) as estimated_fees_minor,
        sum(balance.net_minor) as net_minor,
        sum(case when balance.type in ('charge', 'payment') then 1 else 0 end) as charge_count,
        sum(case when balance.type in ('refund', 'payment_refund') then 1 else 0 end)
            as refund_count
    from balance
    left join estimated_fees
        on
            balance.account_id = estimated_fees.account_id
            and balance.source_id = estimated_fees.charge_id
            and balance.type in ('charge', 'payment')
    group by balance.account_id, {{ utc_date('balance.created_at') }}, balance.currency
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
        daily.estimated_fees_minor,
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
