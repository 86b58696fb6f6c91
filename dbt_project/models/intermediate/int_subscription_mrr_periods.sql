{#- The monthly recurring revenue of each subscription over time (minor units, exact to
    1/10000 of a minor unit), as periods: one `plan` row per stretch at one price, and one
    `discount` row (negative) per stretch a lasting coupon takes off.

    Stripe's definition: active and past_due subscriptions count (a canceled one until it
    ended); trials, free and metered items do not; unit_amount x quantity, yearly / 12,
    weekly x 52 / 12, daily x 365 / 12, divided by interval_count. Forever and repeating
    discounts reduce MRR while they apply; once discounts do not.

    History: each billed period prices the subscription from its invoice lines, so a plan
    change shows from the first invoice at the new price (an upgrade is expansion, not
    churn plus new); the period in progress is priced from the subscription's items as read
    now. The first period reaches back to the subscription's start. -#}
with

subscriptions as (
    select
        *,
        case
            when trial_ended_at is not null and trial_ended_at > started_at
                then trial_ended_at
            else started_at
        end as billing_started_at,
        case
            when status = 'canceled' then coalesce(ended_at, canceled_at)
            else ended_at
        end as billing_ended_at
    from {{ ref('stg_stripe__subscriptions') }}
    where status in ('active', 'past_due', 'canceled', 'trialing')
),

items as (
    select * from {{ ref('stg_stripe__subscription_items') }}
),

invoice_lines as (
    select * from {{ ref('stg_stripe__invoice_lines') }}
),

prices as (
    select * from {{ ref('stg_stripe__prices') }}
),

discounts as (
    select * from {{ ref('stg_stripe__subscription_discounts') }}
),

coupons as (
    select * from {{ ref('stg_stripe__coupons') }}
),

billed_items as (
    select
        invoice_lines.account_id,
        invoice_lines.subscription_id,
        invoice_lines.period_start as effective_from,
        1 as source_rank,
        prices.unit_amount_minor,
        invoice_lines.quantity,
        prices.recurring_interval,
        coalesce(prices.recurring_interval_count, 1) as recurring_interval_count,
        coalesce(prices.usage_type, 'licensed') as usage_type
    from invoice_lines
    inner join prices
        on
            invoice_lines.account_id = prices.account_id
            and invoice_lines.price_id = prices.price_id
    where
        invoice_lines.subscription_item_id is not null
        and not invoice_lines.is_proration
        and invoice_lines.invoice_status != 'draft'
        and prices.recurring_interval is not null
),

latest_billed as (
    select
        account_id,
        subscription_id,
        max(effective_from) as effective_from
    from billed_items
    group by account_id, subscription_id
),

current_items as (
    select
        items.account_id,
        items.subscription_id,
        case
            when
                latest_billed.effective_from is not null
                and (
                    items.current_period_start is null
                    or latest_billed.effective_from > items.current_period_start
                )
                then latest_billed.effective_from
            else coalesce(items.current_period_start, subscriptions.started_at)
        end as effective_from,
        2 as source_rank,
        items.unit_amount_minor,
        items.quantity,
        items.recurring_interval,
        items.recurring_interval_count,
        items.usage_type
    from items
    inner join subscriptions
        on
            items.account_id = subscriptions.account_id
            and items.subscription_id = subscriptions.subscription_id
    left join latest_billed
        on
            items.account_id = latest_billed.account_id
            and items.subscription_id = latest_billed.subscription_id
),

priced_items as (
    select
        *,
        case recurring_interval
            when 'month' then 1.0
            when 'year' then 1.0 / 12
            when 'week' then 52.0 / 12
            when 'day' then 365.0 / 12
        end / recurring_interval_count as months_factor
    from (
        select * from billed_items
        union all
        select * from current_items
    ) as all_items
    where usage_type = 'licensed' and unit_amount_minor > 0
),

phase_sources as (
    select
        account_id,
        subscription_id,
        effective_from,
        source_rank,
        sum(unit_amount_minor * quantity) as recurring_minor,
        sum(unit_amount_minor * quantity * months_factor) as mrr_exact,
        max(months_factor) as months_factor,
        row_number() over (
            partition by account_id, subscription_id, effective_from
            order by source_rank desc
        ) as source_choice
    from priced_items
    group by account_id, subscription_id, effective_from, source_rank
),

phases as (
    select
        account_id,
        subscription_id,
        effective_from,
        recurring_minor,
        mrr_exact,
        months_factor,
        lead(effective_from) over (
            partition by account_id, subscription_id order by effective_from
        ) as next_effective_from,
        row_number() over (
            partition by account_id, subscription_id order by effective_from
        ) as phase_number
    from phase_sources
    where source_choice = 1
),

plan_periods as (
    select
        phases.account_id,
        phases.subscription_id,
        subscriptions.customer_id,
        subscriptions.currency,
        subscriptions.status,
        phases.recurring_minor,
        phases.mrr_exact,
        phases.months_factor,
        case
            when phases.phase_number = 1 or phases.effective_from < subscriptions.billing_started_at
                then subscriptions.billing_started_at
            else phases.effective_from
        end as mrr_starts_at,
        case
            when phases.next_effective_from is null then subscriptions.billing_ended_at
            when subscriptions.billing_ended_at is null then phases.next_effective_from
            when phases.next_effective_from < subscriptions.billing_ended_at
                then phases.next_effective_from
            else subscriptions.billing_ended_at
        end as mrr_ends_at
    from phases
    inner join subscriptions
        on
            phases.account_id = subscriptions.account_id
            and phases.subscription_id = subscriptions.subscription_id
),

plans as (
    select
        account_id,
        subscription_id,
        customer_id,
        currency,
        status,
        'plan' as component,
        cast(null as varchar) as discount_id,
        cast(null as varchar) as coupon_id,
        mrr_starts_at,
        mrr_ends_at,
        cast(round(mrr_exact, 4) as decimal(38, 4)) as mrr_minor,
        recurring_minor,
        mrr_exact,
        months_factor
    from plan_periods
    where mrr_ends_at is null or mrr_starts_at < mrr_ends_at
),

lasting_discounts as (
    select
        discounts.account_id,
        discounts.subscription_id,
        discounts.discount_id,
        discounts.starts_at,
        discounts.ends_at,
        coupons.coupon_id,
        coupons.percent_off,
        coupons.amount_off_minor,
        coupons.currency as coupon_currency
    from discounts
    inner join coupons
        on
            discounts.account_id = coupons.account_id
            and discounts.coupon_id = coupons.coupon_id
    where coupons.duration in ('forever', 'repeating')
),

discount_periods as (
    select
        plans.account_id,
        plans.subscription_id,
        plans.customer_id,
        plans.currency,
        plans.status,
        'discount' as component,
        lasting_discounts.discount_id,
        lasting_discounts.coupon_id,
        case
            when
                lasting_discounts.starts_at is not null
                and lasting_discounts.starts_at > plans.mrr_starts_at
                then lasting_discounts.starts_at
            else plans.mrr_starts_at
        end as mrr_starts_at,
        case
            when lasting_discounts.ends_at is null then plans.mrr_ends_at
            when plans.mrr_ends_at is null then lasting_discounts.ends_at
            when lasting_discounts.ends_at < plans.mrr_ends_at then lasting_discounts.ends_at
            else plans.mrr_ends_at
        end as mrr_ends_at,
        -cast(
            case
                when lasting_discounts.percent_off is not null
                    then round(plans.mrr_exact * lasting_discounts.percent_off / 100, 4)
                when lasting_discounts.coupon_currency = plans.currency
                    then round(
                        case
                            when lasting_discounts.amount_off_minor < plans.recurring_minor
                                then lasting_discounts.amount_off_minor
                            else plans.recurring_minor
                        end * plans.months_factor,
                        4
                    )
                else 0
            end as decimal(38, 4)
        ) as mrr_minor
    from plans
    inner join lasting_discounts
        on
            plans.account_id = lasting_discounts.account_id
            and plans.subscription_id = lasting_discounts.subscription_id
            and (
                lasting_discounts.ends_at is null
                or plans.mrr_starts_at < lasting_discounts.ends_at
            )
            and (plans.mrr_ends_at is null or plans.mrr_ends_at > lasting_discounts.starts_at)
),

{%- set period_columns = [
    'account_id', 'subscription_id', 'customer_id', 'currency', 'status', 'component',
    'discount_id', 'coupon_id', 'mrr_starts_at', 'mrr_ends_at', 'mrr_minor'
] %}

final as (
    select {{ period_columns | join(', ') }} from plans
    union all
    select {{ period_columns | join(', ') }} from discount_periods
)

select * from final
