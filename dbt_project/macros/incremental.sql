{#-
    Incremental models that rebuild themselves when their definition changes. An incremental
    build only stages what changed in the raw tables; the rows it keeps were made by the
    build before, so after a change to the model, to a macro of this project or to a seed it
    reads, those rows would still follow the old definition. Each incremental table carries
    its definition's fingerprint as its comment, and a table made from another definition
    (or from before this, with no comment) is built again in full, as by `--full-refresh`.
-#}

{#- dbt's own (a model's `full_refresh` config, else `--full-refresh`), but true as well for an
    incremental model of this project whose table was made from another definition. -#}
{% macro should_full_refresh() -%}
    {%- set configured = config.get('full_refresh') -%}
    {%- if configured is not none -%}
        {{ return(configured) }}
    {%- endif -%}
    {%- if flags.FULL_REFRESH or config.get('materialized') != 'incremental' -%}
        {{ return(flags.FULL_REFRESH) }}
    {%- endif -%}
    {{ return(incremental_definition_comment() != incremental_definition_stored()) }}
{%- endmacro %}

{#- What an incremental model's table is made from: the model's SQL, every macro of this
    project, the Stripe fields its staging reads (var('stripe_fields')), and the rows of
    each seed it reads. -#}
{% macro incremental_definition_comment() -%}
    {%- set parts = [model.raw_code, tojson(var('stripe_fields', {}), sort_keys=true)] -%}
    {%- for name in stripe_elt | sort -%}
        {%- do parts.append(name ~ '\n' ~ stripe_elt[name].macro.macro_sql) -%}
    {%- endfor -%}
    {%- if execute -%}
        {%- for node_id in model.depends_on.nodes | sort if node_id.startswith('seed.') -%}
            {%- set rows = run_query(
                "select md5(coalesce(string_agg(seed::varchar, chr(10) order by seed::varchar), ''))"
                ~ " from " ~ ref(node_id.split('.')[-1]) ~ " as seed"
            ) -%}
            {%- do parts.append(node_id ~ '\n' ~ rows.columns[0].values()[0]) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return('stripe-elt definition ' ~ local_md5(parts | join('\n\n'))) }}
{%- endmacro %}

{#- The fingerprint the model's table was made with; none without one (or without a table). -#}
{% macro incremental_definition_stored() -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set rows = run_query(
        "select comment from duckdb_tables()"
        ~ " where database_name = '" ~ this.database ~ "'"
        ~ " and schema_name = '" ~ this.schema ~ "'"
        ~ " and table_name = '" ~ this.identifier ~ "'"
    ) -%}
    {{ return(rows.columns[0].values()[0] if rows | length else none) }}
{%- endmacro %}

{#- A post-hook: records the definition an incremental model's table was made with. -#}
{% macro remember_incremental_definition() -%}
    {%- if config.get('materialized') == 'incremental' -%}
        comment on table {{ this }} is '{{ incremental_definition_comment() }}'
    {%- endif -%}
{%- endmacro %}
