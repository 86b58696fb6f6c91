{#- The payment_succesful tab of the CarePortals workbook: one row per succeeded, captured
    charge, as the payment_intent.succeeded webhook recorded it (event, when, the payment
    and its order). Built from the charges and joined to their event, so it is complete
    whether or not every webhook arrived; `event_id` is null where no event was seen (the
    history before the pipeline started reading events). -#}
with

charges as (
    select * from {{ ref('fct_charges') }}
    where status = 'succeeded' and captured
),

events as (
    {{ first_event_per_object('payment_intent.succeeded', 'payment_intent_id') }}
),

final as (
    select
        'payment_intent.succeeded' as event_type,
        events.event_id,
        coalesce(events.received_via, 'objects') as recorded_from,
        charges.charge_id,
        charges.payment_intent_id,
        charges.amount,
        charges.currency,
        -- `datetime` is the CarePortals workbook's column name, keyword or not.
        charges.created_at as datetime,  -- noqa: RF04
        charges.order_id as metadata_resource_id,
        charges.customer_id,
        charges.email,
        charges.account_id
    from charges
    left join events
        on
            charges.account_id = events.account_id
            and charges.payment_intent_id = events.payment_intent_id
)

select * from final
