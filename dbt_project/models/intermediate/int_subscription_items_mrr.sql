{#- Each subscription item's monthly recurring revenue (minor units, exact to 1/10000 of a
    minor unit) and the time it counts: from the end of any trial (billing start) until the
    subscription ended. Stripe's definition: active and past_due subscriptions count, trials,
    free and metered items do not. -#}
with

items as (
    select * from {{ ref('stg_stripe__subscription_items') }}
),

subscriptions as (
    select * from {{ ref('stg_stripe__subscriptions') }}
),

final as (
    select
        items.account_id,
        items.subscription_id,
        items.subscription_item_id,
        items.customer_id,
        items.currency,
        subscriptions.status,
        case
            when
                subscriptions.trial_ended_at is not null
                and subscriptions.trial_ended_at > subscriptions.started_at
                then subscriptions.trial_ended_at
            else subscriptions.started_at
        end as mrr_starts_at,
        coalesce(subscriptions.ended_at, subscriptions.canceled_at) as mrr_ends_at,
        cast(round(
            items.unit_amount_minor * items.quantity
            * case items.recurring_interval
                when 'month' then 1.0
                when 'year' then 1.0 / 12
                when 'week' then 52.0 / 12
                when 'day' then 365.0 / 12
            end
            / items.recurring_interval_count,
            4
        ) as decimal(38, 4)) as mrr_minor
    from items
    inner join subscriptions
        on
            items.account_id = subscriptions.account_id
            and items.subscription_id = subscriptions.subscription_id
    where
        items.usage_type = 'licensed'
        and items.unit_amount_minor > 0
        and subscriptions.status in ('active', 'past_due', 'canceled', 'trialing')
)

select * from final
