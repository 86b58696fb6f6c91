with

source as (
    select
        account_id,
        {{ parse_json('payload', {
            'id': 'varchar',
            'created': 'bigint',
            'name': 'varchar',
            'duration': 'varchar',
            'duration_in_months': 'bigint',
            'percent_off': 'decimal(9, 4)',
            'amount_off': 'bigint',
            'currency': 'varchar',
            'valid': 'boolean'
        }) }} as coupon
    from {{ stripe_object_state('coupons') }} as stripe_objects
),

final as (
    select
        account_id,
        coupon.id as coupon_id,
        {{ from_unix_seconds('coupon.created') }} as created_at,
        coupon.name as coupon_name,
        coupon.duration,
        coupon.duration_in_months,
        coupon.percent_off,
        coupon.amount_off as amount_off_minor,
        lower(coupon.currency) as currency,
        coupon.valid as is_valid
    from source
)

select * from final
