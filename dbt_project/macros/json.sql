{#-
    Parse a JSON column once into a typed struct. `structure` maps field names to SQL types,
    nested dicts for nested objects; fields absent from a document come back null.
-#}
{% macro parse_json(column, structure) -%}
    {{ return(adapter.dispatch('parse_json', 'stripe_elt')(column, structure)) }}
{%- endmacro %}

{% macro duckdb__parse_json(column, structure) -%}
    json_transform({{ column }}, '{{ tojson(structure) }}')
{%- endmacro %}

{#- Sum of the `amount` of a parsed array's elements whose `type` is `kind` (fee_details);
    of every element when `kind` is none (discount_amounts). -#}
{% macro json_sum_amount_by_type(column, kind) -%}
    {{ return(adapter.dispatch('json_sum_amount_by_type', 'stripe_elt')(column, kind)) }}
{%- endmacro %}

{% macro duckdb__json_sum_amount_by_type(column, kind) -%}
    {%- if kind is none -%}
    coalesce(list_sum(list_transform({{ column }}, lambda part: part.amount)), 0)
    {%- else -%}
    coalesce(list_sum(list_transform(
        list_filter({{ column }}, lambda fee: fee.type = '{{ kind }}'),
        lambda fee: fee.amount
    )), 0)
    {%- endif -%}
{%- endmacro %}

{#- One row per element of a parsed array, in a select list (DuckDB and Postgres; other
    adapters flatten with a lateral join instead). -#}
{% macro unnest_list(column) -%}
    {{ return(adapter.dispatch('unnest_list', 'stripe_elt')(column)) }}
{%- endmacro %}

{% macro default__unnest_list(column) -%}
    unnest({{ column }})
{%- endmacro %}
