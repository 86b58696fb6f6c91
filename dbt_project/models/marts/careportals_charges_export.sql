{#- The charges tab exactly as the original CarePortals exporter wrote it. -#}
with

charges as (
    select * from {{ ref('fct_charges') }}
),

final as (
    select
        charge_id,
        amount,
        -- `datetime` is the CarePortals exporter's column name, keyword or not.
        created_at as datetime,  -- noqa: RF04
        order_id as metadata_resource_id,
        customer_id,
        email,
        payment_method_type,
        card_brand,
        status,
        outcome = 'refunded' as refunded,
        amount_refunded
    from charges
)

select * from final
