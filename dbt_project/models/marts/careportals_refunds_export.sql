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
        created_at as datetime,  -- noqa: RF04 (the CarePortals exporter's column name)
        reason,
        status,
        order_id as metadata_resource_id
    from refunds
)

select * from final
