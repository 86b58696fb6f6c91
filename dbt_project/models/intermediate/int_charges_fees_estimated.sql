{#- The fee the fee_schedule seed expects for each captured charge, in the settlement
    currency's minor units: on the balance transaction's settled amount when there is one,
    else on the charge amount when no conversion is needed (a converted charge without a
    balance transaction has no known rate, so no estimate). -#}
with

charges as (
    select * from {{ ref('stg_stripe__charges') }}
),

balance as (
    select * from {{ ref('stg_stripe__balance_transactions') }}
),

schedule as (
    select * from {{ ref('fee_schedule') }}
),

priced as (
    select
        charges.account_id,
        charges.charge_id,
        schedule.settlement_currency,
        coalesce(
            balance.amount_minor,
            case when schedule.currency_conversion_bps = 0 then charges.amount_minor end
        ) as settled_minor,
        schedule.percent_bps
        + case
            when charges.card_country != '{{ var("account_country") }}'
                then schedule.international_card_bps
            else 0
        end
        + schedule.currency_conversion_bps as total_bps,
        schedule.fixed_minor
    from charges
    inner join schedule on charges.currency = schedule.currency
    left join balance
        on
            charges.account_id = balance.account_id
            and charges.balance_transaction_id = balance.balance_transaction_id
    where charges.captured
),

final as (
    select
        account_id,
        charge_id,
        settlement_currency,
        total_bps,
        -- Half up to the minor unit, as Stripe rounds fees.
        cast(floor(settled_minor * total_bps / 10000.0 + 0.5) as bigint) + fixed_minor
            as estimated_fee_minor
    from priced
)

select * from final
