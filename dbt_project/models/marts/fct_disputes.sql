{#- One row per disputed charge: its latest dispute's status and reason, how many times it
    was disputed, and what the disputes took from the balance (amounts and dispute fees,
    summed from balance transactions, never from a fanned-out join). -#}
with

disputes as (
    select * from {{ ref('stg_stripe__disputes') }}
),

balance as (
    select * from {{ ref('stg_stripe__balance_transactions') }}
    where reporting_category in ('dispute', 'dispute_reversal')
),

ranked as (
    select
        *,
        row_number() over (
            partition by account_id, charge_id order by created_at desc, dispute_id desc
        ) as recency,
        count(*) over (partition by account_id, charge_id) as dispute_count,
        min(created_at) over (partition by account_id, charge_id) as first_disputed_at
    from disputes
),

balance_per_charge as (
    select
        disputes.account_id,
        disputes.charge_id,
        -- A charge's disputes move its balance in one currency; max() names it the same
        -- way in every build.
        max(balance.currency) as settlement_currency,
        -sum(
            case when balance.reporting_category = 'dispute' then balance.amount_minor else 0 end
        ) as withdrawn_minor,
        sum(
            case
                when balance.reporting_category = 'dispute_reversal' then balance.amount_minor
                else 0
            end
        ) as reinstated_minor,
        sum(balance.fee_minor) as dispute_fees_minor,
        sum(balance.net_minor) as net_minor
    from disputes
    inner join balance
        on
            disputes.account_id = balance.account_id
            and disputes.dispute_id = balance.source_id
    group by disputes.account_id, disputes.charge_id
),

final as (
    select
        ranked.account_id,
        ranked.charge_id,
        ranked.dispute_id as latest_dispute_id,
        ranked.status as latest_status,
        ranked.reason as latest_reason,
        ranked.created_at as latest_disputed_at,
        ranked.first_disputed_at,
        ranked.dispute_count,
        ranked.currency,
        ranked.amount_minor as latest_amount_minor,
        ranked.amount as latest_amount,
        balance_per_charge.settlement_currency,
        coalesce(balance_per_charge.withdrawn_minor, 0) as withdrawn_minor,
        coalesce(balance_per_charge.reinstated_minor, 0) as reinstated_minor,
        coalesce(balance_per_charge.dispute_fees_minor, 0) as dispute_fees_minor,
        coalesce(balance_per_charge.net_minor, 0) as net_minor
    from ranked
    left join balance_per_charge
        on
            ranked.account_id = balance_per_charge.account_id
            and ranked.charge_id = balance_per_charge.charge_id
    where ranked.recency = 1
)

select * from final
