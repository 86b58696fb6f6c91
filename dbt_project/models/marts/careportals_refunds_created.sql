{#- The refund.created tab of the CarePortals workbook: one row per refund, as the
    refund-created webhook recorded it (event type, when, the refund, its charge and
    order). Built from the refunds, so it is complete whether or not every webhook
    arrived. -#}
with

refunds as (
    select * from {{ ref('fct_refunds') }}
),

final as (
    select
        'refund.created' as event_type,
        refund_id,
        charge_id,
        amount,
        currency,
        -- `datetime` is the CarePortals workbook's column name, keyword or not.
        created_at as datetime,  -- noqa: RF04
        reason,
        status,
        order_id as metadata_resource_id
    from refunds
)

select * from final
