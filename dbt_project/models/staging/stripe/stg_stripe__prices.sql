with

source as (
    select
        account_id,
        {{ parse_json('payload', {
            'id': 'varchar',
            'created': 'bigint',
            'product': 'varchar',
            'currency': 'varchar',
            'unit_amount': 'bigint',
            'type': 'varchar',
            'active': 'boolean',
            'nickname': 'varchar',
            'recurring': {
                'interval': 'varchar', 'interval_count': 'bigint', 'usage_type': 'varchar'
            }
        }) }} as price
    from {{ stripe_object_state('prices') }} as stripe_objects
),

final as (
    select
        account_id,
        price.id as price_id,
        price.product as product_id,
        {{ from_unix_seconds('price.created') }} as created_at,
        lower(price.currency) as currency,
        price.unit_amount as unit_amount_minor,
        price.type as price_type,
        price.active as is_active,
        price.nickname,
        price.recurring.interval as recurring_interval,
        price.recurring.interval_count as recurring_interval_count,
        price.recurring.usage_type
    from source
)

select * from final
