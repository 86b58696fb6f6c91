{{ config(
    materialized='incremental',
    unique_key=['account_id', 'refund_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
) }}

{#- One row per refund, with its charge and order and what it took from the balance.

    Incremental: a build after the first computes again only the refunds staged since this
    table's last build (`built_at`), or whose charge or balance transaction was staged since
    (a charge's order can change, and either may be staged after the refund). A change to
    this model rebuilds it in full (macros/incremental.sql). -#}
{%- set incremental = is_incremental() %}
with

{% if incremental -%}
changed_refunds as (
    select account_id, refund_id
    from {{ ref('stg_stripe__refunds') }}
    where {{ staged_since_last_build() }}
    union
    select refunds.account_id, refunds.refund_id
    from {{ ref('stg_stripe__refunds') }} as refunds
    inner join {{ ref('stg_stripe__charges') }} as charges
        on
            refunds.account_id = charges.account_id
            and refunds.charge_id = charges.charge_id
    where {{ staged_since_last_build('charges') }}
    union
    select refunds.account_id, refunds.refund_id
    from {{ ref('stg_stripe__refunds') }} as refunds
    inner join {{ ref('stg_stripe__balance_transactions') }} as balance
        on
            refunds.account_id = balance.account_id
            and refunds.balance_transaction_id = balance.balance_transaction_id
    where {{ staged_since_last_build('balance') }}
),

{% endif -%}
refunds as (
    select staged.* from {{ ref('stg_stripe__refunds') }} as staged
    {%- if incremental %}
    where {{ keys_in('staged', 'changed_refunds', ['account_id', 'refund_id']) }}
    {%- endif %}
),

charges as (
    select staged.* from {{ ref('stg_stripe__charges') }} as staged
    {%- if incremental %}
    where {{ keys_in('staged', 'refunds', ['account_id', 'charge_id']) }}
    {%- endif %}
),

refund_balance as (
    select balance.* from {{ ref('stg_stripe__balance_transactions') }} as balance
    where balance.type in ('refund', 'payment_refund')
    {%- if incremental %}
        and {{ keys_in('balance', 'refunds', ['account_id', 'balance_transaction_id']) }}
    {%- endif %}
),

final as (
    select
        refunds.account_id,
        refunds.refund_id,
        refunds.charge_id,
        coalesce(charges.order_id, refunds.metadata_order_id) as order_id,
        refunds.created_at,
        refunds.status,
        refunds.reason,
        refunds.currency,
        refunds.amount_minor,
        refunds.amount,
        charges.amount_minor as charge_amount_minor,
        refunds.amount_minor = charges.amount_minor as is_full_refund,
        charges.created_at as charge_created_at,
        {{ dbt.datediff('charges.created_at', 'refunds.created_at', 'day') }}
            as days_from_charge_to_refund,
        {{ dbt.date_trunc('month', utc_date('charges.created_at')) }} as charge_month,
        {{ dbt.date_trunc('month', utc_date('refunds.created_at')) }} as refund_month,
        refund_balance.currency as settlement_currency,
        -refund_balance.amount_minor as settlement_amount_minor,
        -refund_balance.amount as settlement_amount,
        refunds.balance_transaction_id,
        {{ build_started_at() }} as built_at
    from refunds
    left join charges
        on
            refunds.account_id = charges.account_id
            and refunds.charge_id = charges.charge_id
    left join refund_balance
        on
            refunds.account_id = refund_balance.account_id
            and refunds.balance_transaction_id = refund_balance.balance_transaction_id
)

select * from final
