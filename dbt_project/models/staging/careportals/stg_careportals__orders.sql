with

source as (
    select * from {{ source('careportals', 'orders') }}
),

currencies as (
    select * from {{ ref('currency_exponents') }}
),

final as (
    select
        source.order_id,
        lower(trim(source.customer_email)) as customer_email,
        lower(trim(source.currency)) as currency,
        currencies.exponent as currency_exponent,
        cast(source.total as decimal(38, 3)) as total,
        cast(cast(source.total as decimal(38, 3)) / currencies.minor_unit_value as bigint)
            as total_minor,
        lower(trim(source.status)) as status,
        cast(source.created_at as timestamptz) as created_at,
        source.product,
        source.category,
        currencies.currency is null as is_unknown_currency
    from source
    left join currencies on lower(trim(source.currency)) = currencies.currency
)

select * from final
