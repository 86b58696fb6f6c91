{#- The refund.created tab of the CarePortals workbook: one row per refund, as the
    refund.created webhook recorded it (event, when, the refund, its charge and order).
    Built from the refunds and joined to their event, so it is complete whether or not every
    webhook arrived; `event_id` is null where no event was seen. -#}
with

refunds as (
    select * from {{ ref('fct_refunds') }}
),

charges as (
    select * from {{ ref('fct_charges') }}
),

events as (
    {{ first_event_per_object('refund.created', 'refund_id') }}
),

final as (
    select
        'refund.created' as event_type,
        events.event_id,
        coalesce(events.received_via, 'objects') as recorded_from,
        refunds.refund_id,
        refunds.charge_id,
        refunds.amount,
        refunds.currency,
        -- `datetime` is the CarePortals workbook's column name, keyword or not.
        refunds.created_at as datetime,  -- noqa: RF04
        refunds.reason,
        refunds.status,
        refunds.order_id as metadata_resource_id,
        charges.customer_id,
        charges.email,
        refunds.account_id
    from refunds
    left join charges
        on
            refunds.account_id = charges.account_id
            and refunds.charge_id = charges.charge_id
    left join events
        on
            refunds.account_id = events.account_id
            and refunds.refund_id = events.refund_id
)

select * from final
