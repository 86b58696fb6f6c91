{#-
    The latest state of each object of a raw Stripe table: the listed row or the object an
    event carried, whichever is newer. Listed rows are dated by `observed_at` (the API's
    clock when they were read; their creation time for rows loaded before it existed),
    events by their `created`. On the same second an update or a deletion beats the listed
    row and a creation loses to it; then the later event id wins, so the choice never
    depends on load order. `object_deleted` is true when the latest event deleted it.

    Each object comes with what it was staged from: `source_extracted_at`, when its listed
    row was read (null for an object known only from events), and `source_event_count`, how
    many events carried it. Given `staged_id`, the id column of the calling model, an
    incremental build of that model stages only the objects whose listed row was read again
    or first, or whose events it has not counted, since the build that staged them: a
    webhook's few objects, not every payload of the account.

    Given `fields` (the list's declared fields, var('stripe_fields')), each object comes as
    `object`, the struct of those fields, instead of its `payload`: from the typed columns
    of the listed rows written with this declaration, parsed from the payload for every
    other row (see ingestion/typed_fields.py).
-#}
{% macro stripe_object_state(table, staged_id=none, fields=none) -%}
{#- A unit test has no table of the model (`this`) unless it gives one. -#}
{%- set incremental = staged_id is not none and this is not none and is_incremental() -%}
{%- set typed = fields is not none and has_typed_fields(source('stripe', table), fields) -%}
{%- set version = typed_fields_version(fields) if typed else none -%}
{#- The listed rows in one part, or in two when the table has typed columns: a part of its
    own for the rows written with this declaration reads no payload. -#}
{%- if typed -%}
    {%- set listed_parts = ['typed', 'parsed'] -%}
{%- else -%}
    {%- set listed_parts = ['payload' if fields is none else 'parsed'] -%}
{%- endif -%}
(
    -- Versions are ranked on their keys alone, and only for the objects some event carried;
    -- the raw table is then read once, each payload straight from its row, so no copy of
    -- every listed payload is held for a join.
    with

    event_counts as {{ stripe_event_counts(table) }},

    {% if incremental -%}
    changed as {{ stripe_changed_objects(table, staged_id) }},

    {% endif -%}
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
            id as event_id,
            null::timestamptz as extracted_at
        from {{ source('stripe', 'events') }} as events
        where
            object_table = '{{ table }}'
            {%- if incremental %}
            and exists (
                select 1 from changed
                where changed.account_id = events.account_id and changed.id = events.object_id
            )
            {%- endif %}
    ),

    evented_listed as (
        select
            listed.account_id,
            listed.id,
            coalesce(listed.observed_at, listed.created) as version_at,
            1 as version_rank,
            '' as event_id,
            listed.extracted_at
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
            version_at,
            max(extracted_at) over (partition by account_id, id) as listed_extracted_at,
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
            event_id,
            version_at,
            listed_extracted_at
        from ranked
        where version_number = 1 and event_id != ''
    )

    {%- if incremental %},

    -- The changed objects whose listed row is their latest version, by the row's keys: the
    -- join hands their range of `extracted_at` to the scan, which then reads only the
    -- payloads of the loads that brought them.
    listed_won as (
        select
            listed.account_id,
            listed.id,
            listed.extracted_at
        from {{ source('stripe', table) }} as listed
        where
            exists (
                select 1 from changed
                where changed.account_id = listed.account_id and changed.id = listed.id
            )
            and not exists (
                select 1 from event_won
                where event_won.account_id = listed.account_id and event_won.id = listed.id
            )
    )
    {%- endif %}

    {%- for part in listed_parts %}
    select
        listed.account_id,
        listed.id,
        listed.livemode,
        {%- if part == 'typed' %}
        {{ typed_fields_struct('listed', fields) }} as object,
        {%- elif part == 'parsed' %}
        {{ parse_json('listed.payload', fields) }} as object,
        {%- else %}
        listed.payload,
        {%- endif %}
        false as object_deleted,
        listed.extracted_at as source_extracted_at,
        coalesce(event_counts.event_count, 0) as source_event_count
    from {{ source('stripe', table) }} as listed
    {%- if incremental %}
    inner join listed_won
        on
            listed.account_id = listed_won.account_id
            and listed.id = listed_won.id
            and listed.extracted_at = listed_won.extracted_at
    {%- endif %}
    left join event_counts
        on listed.account_id = event_counts.account_id and listed.id = event_counts.id
    where
        true
        {%- if not incremental %}
        and not exists (
            select 1 from event_won
            where event_won.account_id = listed.account_id and event_won.id = listed.id
        )
        {%- endif %}
        {%- if part == 'typed' %}
        and listed.fields_version = '{{ version }}'
        {%- elif typed %}
        and listed.fields_version is distinct from '{{ version }}'
        {%- endif %}
    union all
    {%- endfor %}
    select
        events.account_id,
        events.object_id as id,
        events.livemode,
        {%- if fields is none %}
        events.object_payload as payload,
        {%- else %}
        {{ parse_json('events.object_payload', fields) }} as object,
        {%- endif %}
        events.object_deleted,
        event_won.listed_extracted_at as source_extracted_at,
        event_counts.event_count as source_event_count
    from {{ source('stripe', 'events') }} as events
    -- By `created` too: the scan then reads only the events of the winners' range.
    inner join event_won
        on
            events.account_id = event_won.account_id
            and events.id = event_won.event_id
            and events.created = event_won.version_at
    inner join event_counts
        on event_won.account_id = event_counts.account_id and event_won.id = event_counts.id
)
{%- endmacro %}


{#- The objects of a raw Stripe table to stage again in the calling model's table (`this`,
    whose id column is `staged_id`): those whose listed row a load read again or first, and
    those with events the table has not counted. -#}
{% macro stripe_changed_objects(table, staged_id) -%}
(
    with

    event_counts as {{ stripe_event_counts(table) }}

    select
        listed.account_id,
        listed.id
    from {{ source('stripe', table) }} as listed
    left join {{ this }} as staged
        on
            listed.account_id = staged.account_id
            and listed.id = staged.{{ staged_id }}
    where staged.source_extracted_at is distinct from listed.extracted_at
    union
    select
        event_counts.account_id,
        event_counts.id
    from event_counts
    left join {{ this }} as staged
        on
            event_counts.account_id = staged.account_id
            and event_counts.id = staged.{{ staged_id }}
    where staged.source_event_count is distinct from event_counts.event_count
)
{%- endmacro %}

{#- A pre-hook of a model with many rows to one object (an invoice's lines): in a build after
    the first, the rows of the objects to stage again go first, so that an object left with
    no rows (a draft invoice's last line deleted) keeps none. The rows they will have are
    then staged as for any object without rows. -#}
{% macro delete_changed_objects(table, staged_id) -%}
    {%- if this is not none and is_incremental() -%}
    delete from {{ this }} as staged
    where exists (
        select 1 from {{ stripe_changed_objects(table, staged_id) }} as changed
        where changed.account_id = staged.account_id and changed.id = staged.{{ staged_id }}
    )
    {%- endif -%}
{%- endmacro %}


{#- How many events carried each object of a raw Stripe table. -#}
{% macro stripe_event_counts(table) -%}
(
    select
        account_id,
        object_id as id,
        count(*) as event_count
    from {{ source('stripe', 'events') }}
    where object_table = '{{ table }}'
    group by account_id, object_id
)
{%- endmacro %}
