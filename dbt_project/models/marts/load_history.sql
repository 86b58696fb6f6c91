{#- The sync history: one row per load, with what it loaded, how long it took and how it
    ended. -#}
with

loads as (
    select * from {{ source('ops', 'load_history') }}
),

final as (
    select
        pipeline,
        load_id,
        started_at,
        finished_at,
        {{ dbt.datediff('started_at', 'finished_at', 'second') }}
            as duration_seconds,
        outcome,
        cast(rows_by_table as varchar) as rows_by_table,
        error,
        cast(account_outcomes as varchar) as account_outcomes
    from loads
)

select * from final
