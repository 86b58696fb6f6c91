{#-
    Minor units -> major units through the currency_exponents seed: `amount_minor` times the
    value of one minor unit (0.01, 1 or 0.001), exact as a decimal. Never a flat / 100.
    Needs the seed joined as `currency_alias`.
-#}
{% macro to_major_units(amount_minor, currency_alias='currencies') -%}
    cast({{ amount_minor }} as decimal(38, 0)) * {{ currency_alias }}.minor_unit_value
{%- endmacro %}

{#- Epoch seconds (as Stripe writes times) -> timestamp with time zone, UTC. -#}
{% macro from_unix_seconds(column) -%}
    {{ return(adapter.dispatch('from_unix_seconds', 'stripe_elt')(column)) }}
{%- endmacro %}

{% macro duckdb__from_unix_seconds(column) -%}
    to_timestamp({{ column }})
{%- endmacro %}

{#- The UTC calendar date of a timestamp with time zone, whatever the session's zone. -#}
{% macro utc_date(column) -%}
    {{ return(adapter.dispatch('utc_date', 'stripe_elt')(column)) }}
{%- endmacro %}

{% macro duckdb__utc_date(column) -%}
    cast(timezone('UTC', {{ column }}) as date)
{%- endmacro %}

{#- First days of the months from the month of `start_expr` to the month of the `mrr_as_of`
    var (a date; default today). -#}
{% macro month_starts(start_expr) -%}
    {{ return(adapter.dispatch('month_starts', 'stripe_elt')(start_expr)) }}
{%- endmacro %}

{% macro duckdb__month_starts(start_expr) -%}
    select cast(month_start as date) as month_start
    from range(
        date_trunc('month', ({{ start_expr }})),
        date_trunc('month', {{ as_of_date() }}) + interval 1 month,
        interval 1 month
    ) as months (month_start)
{%- endmacro %}

{#- The date metrics are measured at: the `mrr_as_of` var, or today. -#}
{% macro as_of_date() -%}
    {%- if var('mrr_as_of', none) -%}cast('{{ var("mrr_as_of") }}' as date){%- else -%}current_date{%- endif -%}
{%- endmacro %}

{#- The median of a column, as an aggregate. -#}
{% macro median(column) -%}
    {{ return(adapter.dispatch('median', 'stripe_elt')(column)) }}
{%- endmacro %}

{% macro default__median(column) -%}
    percentile_cont(0.5) within group (order by {{ column }})
{%- endmacro %}

{% macro duckdb__median(column) -%}
    median({{ column }})
{%- endmacro %}

{#- A date or timestamp as an instant (timestamp with time zone), read as UTC. -#}
{% macro to_utc_timestamp(expr) -%}
    {{ return(adapter.dispatch('to_utc_timestamp', 'stripe_elt')(expr)) }}
{%- endmacro %}

{% macro default__to_utc_timestamp(expr) -%}
    cast({{ expr }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro duckdb__to_utc_timestamp(expr) -%}
    cast(cast({{ expr }} as timestamp) as timestamptz)
{%- endmacro %}
