{#- The refunds tab exactly as the original CarePortals exporter wrote it. -#}
with

refunds as (
    select * from {{ ref('fct_refunds') }}
),

final as (
    select
        refund_id,
        charge_id,
        amount,
        -- `datetime` is the CarePortals exporter's column name, keyword or not.
        created_at as datetime,  -- noqa: RF04
        reason,
        status,
        order_id as metadata_resource_id
    from refunds
)

select * from final
