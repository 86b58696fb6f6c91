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
    {#- Asked several times for one node (by each is_incremental() of its SQL, then by the
        materialization), answered once per rendering: each answer costs queries. -#}
    {%- if execute and '_stripe_elt_rebuild' in model -%}
        {{ return(model['_stripe_elt_rebuild']) }}
    {%- endif -%}
    {%- set rebuild = incremental_definition_comment() != incremental_definition_stored() -%}
    {%- if execute -%}
        {%- do model.update({'_stripe_elt_rebuild': rebuild}) -%}
    {%- endif -%}
    {{ return(rebuild) }}
{%- endmacro %}

{#- What an incremental model's table is made from: the model's SQL and that of each view it
    reads (the steps it is computed through), every macro of this project, the variables
    they name (and the Stripe fields staging reads, var('stripe_fields')), the rows of each
    seed the model or those views read, and the columns' types and constraints of its
    enforced contract. -#}
{% macro incremental_definition_comment() -%}
    {%- set inputs = definition_inputs(model.depends_on.nodes, []) -%}
    {%- set codes = [model.raw_code] -%}
    {%- for node_id in inputs if not node_id.startswith('seed.') -%}
        {%- do codes.append(node_id ~ '\n' ~ graph.nodes[node_id].raw_code) -%}
    {%- endfor -%}
    {%- set parts = codes + [tojson(var('stripe_fields', {}), sort_keys=true)] -%}
    {%- set names = modules.re.findall(
        "var\\(\\s*['\"](\\w+)['\"]", codes | join('\n')
    ) | unique | sort -%}
    {%- for name in names -%}
        {%- do parts.append('var ' ~ name ~ '\n' ~ tojson(var(name, none), sort_keys=true)) -%}
    {%- endfor -%}
    {%- for name in stripe_elt | sort -%}
        {%- do parts.append(name ~ '\n' ~ stripe_elt[name].macro.macro_sql) -%}
    {%- endfor -%}
    {#- An enforced contract's types and constraints are the table's own (a not_null
        constraint is checked as rows are written): a table made under another contract is
        built again. Descriptions are left out. -#}
    {%- if model.config.contract.enforced -%}
        {%- set contract = [] -%}
        {%- for name, column in model.columns.items() -%}
            {%- do contract.append([name, column.data_type, column.constraints]) -%}
        {%- endfor -%}
        {%- do parts.append(
            'contract\n' ~ tojson([contract, model.constraints], sort_keys=true)
        ) -%}
    {%- endif -%}
    {%- if execute -%}
        {%- for node_id in inputs if node_id.startswith('seed.') -%}
            {%- set rows = run_query(
                "select md5(coalesce(string_agg(seed::varchar, chr(10) order by seed::varchar), ''))"
                ~ " from " ~ api.Relation.create(
                    database=graph.nodes[node_id].database,
                    schema=graph.nodes[node_id].schema,
                    identifier=graph.nodes[node_id].alias,
                ) ~ " as seed"
            ) -%}
            {%- do parts.append(node_id ~ '\n' ~ rows.columns[0].values()[0]) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return('stripe-elt definition ' ~ local_md5(parts | join('\n\n'))) }}
{%- endmacro %}

{#- The seeds and views among `node_ids`, and those the views read in turn, sorted: what a
    model's rows are computed from besides tables, whose changes an incremental build sees in
    their rows. -#}
{% macro definition_inputs(node_ids, found) -%}
    {%- for node_id in node_ids if node_id not in found -%}
        {%- set node = graph.nodes.get(node_id) -%}
        {%- if node_id.startswith('seed.') -%}
            {%- do found.append(node_id) -%}
        {%- elif node and node.resource_type == 'model'
            and node.config.materialized in ('view', 'ephemeral') -%}
            {%- do found.append(node_id) -%}
            {%- do definition_inputs(node.depends_on.nodes, found) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(found | sort) }}
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

{#- When the running dbt command started, as an instant: each row an incremental staging model
    writes carries it (`staged_at`), so that a model built from them later finds what changed
    since its own last build. -#}
{% macro build_started_at() -%}
    cast('{{ run_started_at.isoformat() }}' as timestamptz)
{%- endmacro %}

{#- In a mart built incrementally from staged rows: the row (of `relation`, a table alias) was
    staged after the mart's last build, the newest `built_at` of its table (`this`). From
    another incremental mart, `column='built_at'`: the row was computed since. -#}
{% macro staged_since_last_build(relation=none, column='staged_at') -%}
    {{ relation ~ '.' if relation }}{{ column }} > (
        select coalesce(max(built_at), '-infinity'::timestamptz) from {{ this }}
    )
{%- endmacro %}

{#- The row (of `relation`, a table alias) has its `keys` among the rows of `keys_relation`: a
    mart built incrementally reads each input for the rows it computes again. -#}
{% macro keys_in(relation, keys_relation, keys) -%}
    exists (
        select 1 from {{ keys_relation }}
        where
            {%- for key in keys %}
            {{ 'and ' if not loop.first }}{{ keys_relation }}.{{ key }} = {{ relation }}.{{ key }}
            {%- endfor %}
    )
{%- endmacro %}
