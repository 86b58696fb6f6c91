{#- The discounts a subscription holds now (subscriptions are read with
    `expand[]=data.discounts`). Stripe removes a discount once it has run out, so a coupon
    appears here only while it applies. -#}
with

source as (
    select
        account_id,
        {{ parse_json('payload', {
            'id': 'varchar',
            'customer': 'varchar',
            'discounts': [{
                'id': 'varchar',
                'start': 'bigint',
                'end': 'bigint',
                'source': {'coupon': 'varchar'},
                'coupon': {'id': 'varchar'}
            }]
        }) }} as stripe_subscription
    from {{ source('stripe', 'subscriptions') }}
),

discounts as (
    select
        account_id,
        stripe_subscription.id as subscription_id,
        stripe_subscription.customer as customer_id,
        {{ unnest_list('stripe_subscription.discounts') }} as stripe_discount
    from source
),

final as (
    select
        account_id,
        subscription_id,
        customer_id,
        stripe_discount.id as discount_id,
        -- Older API versions name the coupon inline; newer ones under `source`.
        coalesce(stripe_discount.source.coupon, stripe_discount.coupon.id) as coupon_id,
        {{ from_unix_seconds('stripe_discount.start') }} as starts_at,
        {{ from_unix_seconds('stripe_discount."end"') }} as ends_at
    from discounts
    -- A discount read without expansion is only an id: it cannot be priced.
    where stripe_discount.id is not null
)

select * from final
