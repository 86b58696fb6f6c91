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
    -- Most objects have no event: their listed row is their state, taken without ranking
    -- (no sort of every payload). Only the objects some event carried are ranked.
    with

    object_events as (
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
    ),

    evented as (
        select distinct
            account_id,
            id
        from object_events
    ),

    listed as (
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
    ),

    versions as (
        select listed.*
        from listed
        inner join evented
            on listed.account_id = evented.account_id and listed.id = evented.id
        union all
        select * from object_events
    ),

    ranked as (
        select
            account_id,
            id,
            livemode,
            payload,
            object_deleted,
            row_number() over (
                partition by account_id, id
                order by version_at desc, version_rank desc, event_id desc
            ) as version_number
        from versions
    )

    select
        listed.account_id,
        listed.id,
        listed.livemode,
        listed.payload,
        listed.object_deleted
    from listed
    left join evented
        on listed.account_id = evented.account_id and listed.id = evented.id
    where evented.id is null
    union all
    select
        account_id,
        id,
        livemode,
        payload,
        object_deleted
    from ranked
    where version_number = 1
)
{%- endmacro %}
