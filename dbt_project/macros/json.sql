{#-
    Parse a JSON column once into a typed struct. `structure` maps field names to SQL types,
    nested dicts for nested objects; fields absent from a document come back null.
-#}
{% macro parse_json(column, structure) -%}
    {{ return(adapter.dispatch('parse_json', 'stripe_elt')(column, structure)) }}
{%- endmacro %}

{#- DuckDB: a structure of scalars and objects is one `json_extract_string` of every scalar's
    path, packed into the struct. The document is parsed once, as by `json_transform`, and at
    1M charges it takes about half the time. A structure with a list keeps `json_transform`:
    extracting the list as JSON text to transform it alone costs more than it saves. -#}
{% macro duckdb__parse_json(column, structure) -%}
    {%- if _json_has_list(structure) -%}
    json_transform({{ column }}, '{{ tojson(structure) }}')
    {%- else -%}
    {%- set paths = _json_leaf_paths(structure, '$') -%}
    {{- _json_struct_pack(
        structure, '$', paths,
        'json_extract_string(' ~ column ~ ', [' ~ ("'" ~ paths | join("', '") ~ "'") ~ '])'
    ) -}}
    {%- endif -%}
{%- endmacro %}

{#- Whether `structure` has a list at any depth. -#}
{% macro _json_has_list(structure) -%}
    {%- for kind in structure.values() -%}
        {%- if kind is mapping -%}
            {%- if _json_has_list(kind) -%}
                {{ return(true) }}
            {%- endif -%}
        {%- elif kind is not string -%}
            {{ return(true) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(false) }}
{%- endmacro %}

{#- The JSON path of each scalar in `structure`, depth first. -#}
{% macro _json_leaf_paths(structure, prefix) -%}
    {%- set paths = [] -%}
    {%- for key, kind in structure.items() -%}
        {%- set path = prefix ~ '."' ~ key ~ '"' -%}
        {%- if kind is mapping -%}
            {%- do paths.extend(_json_leaf_paths(kind, path)) -%}
        {%- else -%}
            {%- do paths.append(path) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(paths) }}
{%- endmacro %}

{#- `structure` as a struct of the extracted `values` (a list, in the order of `paths`);
    a field that does not convert to its type is null, as in `json_transform`. -#}
{% macro _json_struct_pack(structure, prefix, paths, values) -%}
    struct_pack(
    {%- for key, kind in structure.items() -%}
        {%- set path = prefix ~ '."' ~ key ~ '"' -%}
        {%- set value = values ~ '[' ~ (paths.index(path) + 1) ~ ']' if kind is not mapping -%}
        "{{ key }}" := {% if kind is mapping -%}
            {{ _json_struct_pack(kind, path, paths, values) }}
        {%- elif kind == 'varchar' -%}
            {{ value }}
        {%- else -%}
            try_cast({{ value }} as {{ kind }})
        {%- endif -%}
        {{- ', ' if not loop.last -}}
    {%- endfor -%}
    )
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

{#- `structure` as a struct of the typed columns the loads write for it beside the payload
    (`field_<path>`, lowercased: ingestion/typed_fields.py), of the relation `alias`: the
    same struct as `parse_json` of the payload gives. -#}
{% macro typed_fields_struct(alias, structure, prefix=[]) -%}
    struct_pack(
    {%- for key, kind in structure.items() -%}
        {%- set path = prefix + [key] -%}
        "{{ key }}" := {% if kind is mapping -%}
            {{ typed_fields_struct(alias, kind, path) }}
        {%- else -%}
            {{ alias }}.{{ typed_field_column(path) }}
        {%- endif -%}
        {{- ', ' if not loop.last -}}
    {%- endfor -%}
    )
{%- endmacro %}

{#- The typed column of the field at `path` (a list of keys). -#}
{% macro typed_field_column(path) -%}
    field_{{ path | join('_') | lower }}
{%- endmacro %}

{#- The version a row's typed columns were written with, for `structure` (as
    ingestion.typed_fields.declaration_version computes it). -#}
{% macro typed_fields_version(structure) -%}
    {{ return(local_md5(tojson(structure, sort_keys=true))) }}
{%- endmacro %}

{#- The leaf paths of `structure`, as lists of keys. -#}
{% macro _typed_field_paths(structure, prefix=[]) -%}
    {%- set paths = [] -%}
    {%- for key, kind in structure.items() -%}
        {%- if kind is mapping -%}
            {%- do paths.extend(_typed_field_paths(kind, prefix + [key])) -%}
        {%- else -%}
            {%- do paths.append(prefix + [key]) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(paths) }}
{%- endmacro %}

{#- Whether the raw table `relation` has the typed columns of `structure` (the loads of
    this version wrote it at least once; a unit test's given rows have none). -#}
{% macro has_typed_fields(relation, structure) -%}
    {%- if not execute or relation is none -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name')
        | map('lower') | list -%}
    {%- if 'fields_version' not in names -%}
        {{ return(false) }}
    {%- endif -%}
    {%- for path in _typed_field_paths(structure) -%}
        {%- if typed_field_column(path) | trim not in names -%}
            {{ return(false) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(true) }}
{%- endmacro %}
