{#- One row per Stripe event, whether it came from the Events feed or a webhook. -#}
with

source as (
    select * from {{ source('stripe', 'events') }}
),

final as (
    select
        account_id,
        id as event_id,
        type as event_type,
        {{ from_unix_seconds('created') }} as created_at,
        object_table,
        object_id,
        object_deleted as is_deleting,
        source as received_via,
        livemode
    from source
)

select * from final
