{{ config(
    materialized='incremental',
    unique_key=['account_id', 'subscription_id'],
    pre_hook="{{ delete_changed_objects('subscriptions', 'subscription_id') }}",
) }}

with

source as (
    select
        account_id,
        source_extracted_at,
        source_event_count,
        {{ parse_json('payload', {
            'id': 'varchar',
            'customer': 'varchar',
            'items': {'data': [{
                'id': 'varchar',
                'quantity': 'bigint',
                'current_period_start': 'bigint',
                'price': {
                    'id': 'varchar',
                    'product': 'varchar',
                    'unit_amount': 'bigint',
                    'currency': 'varchar',
                    'recurring': {
                        'interval': 'varchar',
                        'interval_count': 'bigint',
                        'usage_type': 'varchar'
                    }
                }
            }]}
        }) }} as stripe_subscription
    from {{ stripe_object_state('subscriptions', staged_id='subscription_id') }} as stripe_objects
),

items as (
    select
        account_id,
        source_extracted_at,
        source_event_count,
        stripe_subscription.id as subscription_id,
        stripe_subscription.customer as customer_id,
        {{ unnest_list('stripe_subscription.items.data') }} as item
    from source
),

final as (
    select
        account_id,
        subscription_id,
        customer_id,
        item.id as subscription_item_id,
        item.price.id as price_id,
        item.price.product as product_id,
        lower(item.price.currency) as currency,
        item.price.unit_amount as unit_amount_minor,
        coalesce(item.quantity, 1) as quantity,
        item.price.recurring.interval as recurring_interval,
        coalesce(item.price.recurring.interval_count, 1) as recurring_interval_count,
        coalesce(item.price.recurring.usage_type, 'licensed') as usage_type,
        {{ from_unix_seconds('item.current_period_start') }} as current_period_start,
        source_extracted_at,
        source_event_count
    from items
)

select * from final
