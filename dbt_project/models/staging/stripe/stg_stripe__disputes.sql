with

source as (
    select
        account_id,
        {{ parse_json('payload', {
            'id': 'varchar',
            'created': 'bigint',
            'amount': 'bigint',
            'currency': 'varchar',
            'charge': 'varchar',
            'payment_intent': 'varchar',
            'reason': 'varchar',
            'status': 'varchar'
        }) }} as dispute
    from {{ stripe_object_state('disputes') }} as stripe_objects
),

currencies as (
    select * from {{ ref('currency_exponents') }}
),

final as (
    select
        source.account_id,
        source.dispute.id as dispute_id,
        source.dispute.charge as charge_id,
        source.dispute.payment_intent as payment_intent_id,
        {{ from_unix_seconds('source.dispute.created') }} as created_at,
        source.dispute.status,
        source.dispute.reason,
        lower(source.dispute.currency) as currency,
        source.dispute.amount as amount_minor,
        {{ to_major_units('source.dispute.amount') }} as amount,
        currencies.currency is null as is_unknown_currency
    from source
    left join currencies on lower(source.dispute.currency) = currencies.currency
)

select * from final
