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
    -- Versions are ranked on their keys alone, and only for the objects some event carried;
    -- the raw table is then read once, each payload straight from its row, so no copy of
    -- every listed payload is held for a join.
    with

    object_events as (
        select
            account_id,
            object_id as id,
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
    ),

    evented_listed as (
        select
            listed.account_id,
            listed.id,
            coalesce(listed.observed_at, listed.created) as version_at,
            1 as version_rank,
            '' as event_id
        from {{ source('stripe', table) }} as listed
        where exists (
            select 1 from object_events
            where object_events.account_id = listed.account_id and object_events.id = listed.id
        )
    ),

    ranked as (
        select
            account_id,
            id,
            event_id,
            row_number() over (
                partition by account_id, id
                order by version_at desc, version_rank desc, event_id desc
            ) as version_number
        from (
            select * from evented_listed
            union all
            select * from object_events
        ) as versions
    ),

    -- The objects whose latest version an event carried.
    event_won as (
        select
            account_id,
            id,
            event_id
        from ranked
        where version_number = 1 and event_id != ''
    )

    select
        listed.account_id,
        listed.id,
        listed.livemode,
        listed.payload,
        false as object_deleted
    from {{ source('stripe', table) }} as listed
    where not exists (
        select 1 from event_won
        where event_won.account_id = listed.account_id and event_won.id = listed.id
    )
    union all
    select
        events.account_id,
        events.object_id as id,
        events.livemode,
        events.object_payload as payload,
        events.object_deleted
    from {{ source('stripe', 'events') }} as events
    inner join event_won
        on events.account_id = event_won.account_id and events.id = event_won.event_id
)
{%- endmacro %}
