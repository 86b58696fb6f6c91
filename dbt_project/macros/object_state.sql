{#-
    The latest state of each object of a raw Stripe table: the listed row or the object an
    event carried, whichever is newer. Listed rows are dated by `observed_at` (the API's
    clock when they were read; their creation time for rows loaded before it existed),
    events by their `created`. On the same second an update or a deletion beats the listed
    row and a creation loses to it; then the later event id wins, so the choice never
    depends on load order. `object_deleted` is true when the latest event deleted it.
-#}
{% macro stripe_object_state(table) -%}
(
    select
        account_id,
        id,
        livemode,
        payload,
        object_deleted
    from (
        select
            versions.*,
            row_number() over (
                partition by versions.account_id, versions.id
                order by versions.version_at desc, versions.version_rank desc, versions.event_id desc
            ) as version_number
        from (
            select
                account_id,
                id,
                livemode,
                payload,
                false as object_deleted,
                coalesce(observed_at, created) as version_at,
                1 as version_rank,
                '' as event_id
            from {{ source('stripe', table) }}
            union all
            select
                account_id,
                object_id as id,
                livemode,
                object_payload as payload,
                object_deleted,
                created as version_at,
                case
                    when object_deleted then 3
                    -- A charge is created by the event that reports its outcome.
                    when
                        type like '%.created'
                        or type in ('charge.succeeded', 'charge.failed', 'charge.pending')
                        then 0
                    else 2
                end as version_rank,
                id as event_id
            from {{ source('stripe', 'events') }}
            where object_table = '{{ table }}'
        ) as versions
    ) as ranked
    where version_number = 1
)
{%- endmacro %}
