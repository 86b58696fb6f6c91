{#- The first event of `event_type` per object (by time, then id): the event that announced
    it, for the CarePortals webhook tabs. Columns: account_id, `id_column`, event_id,
    received_via. -#}
{% macro first_event_per_object(event_type, id_column) -%}
    select
        account_id,
        object_id as {{ id_column }},
        event_id,
        received_via
    from (
        select
            account_id,
            object_id,
            event_id,
            received_via,
            row_number() over (
                partition by account_id, object_id order by created_at, event_id
            ) as event_number
        from {{ ref('stg_stripe__events') }}
        where event_type = '{{ event_type }}'
    ) as numbered
    where event_number = 1
{%- endmacro %}
