{#- The payment_succesful tab of the CarePortals workbook: one row per succeeded, captured
    charge, as the payment-succeeded webhook recorded it (event type, when, the payment and
    its order). Built from the charges, so it is complete whether or not every webhook
    arrived. -#}
with

charges as (
    select * from {{ ref('fct_charges') }}
    where status = 'succeeded' and captured
),

final as (
    select
        'charge.succeeded' as event_type,
        charge_id,
        payment_intent_id,
        amount,
        currency,
        -- `datetime` is the CarePortals workbook's column name, keyword or not.
        created_at as datetime,  -- noqa: RF04
        order_id as metadata_resource_id,
        customer_id,
        email
    from charges
)

select * from final
