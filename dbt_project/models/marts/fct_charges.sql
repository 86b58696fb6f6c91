{{ config(
    materialized='incremental',
    unique_key=['account_id', 'charge_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
) }}

{#- One row per charge: its order, its outcome, and what it really earned (the balance
    transaction's amount, fee and net, in the settlement currency).

    Incremental: a build after the first computes again only the charges something changed
    for since this table's last build (`built_at`): the charge, its balance transaction or
    one of its refunds staged again, or its CarePortals order changed. A change to this
    model, to the views it reads through, to their seeds or to the variables they name
    rebuilds it in full (macros/incremental.sql). -#}
{%- set incremental = is_incremental() %}
with

{% if incremental -%}
changed_charges as (
    select account_id, charge_id
    from {{ ref('stg_stripe__charges') }}
    where {{ staged_since_last_build() }}
    union
    select charges.account_id, charges.charge_id
    from {{ ref('stg_stripe__charges') }} as charges
    inner join {{ ref('stg_stripe__balance_transactions') }} as balance
        on
            charges.account_id = balance.account_id
            and charges.balance_transaction_id = balance.balance_transaction_id
    where {{ staged_since_last_build('balance') }}
    union
    select account_id, charge_id
    from {{ ref('stg_stripe__refunds') }}
    where {{ staged_since_last_build() }} and charge_id is not null
    union
    -- CarePortals orders are staged in full by every build: their changes are found by
    -- comparing what each charge holds of its order with the order as it is now.
    select built.account_id, built.charge_id
    from {{ this }} as built
    left join {{ ref('stg_careportals__orders') }} as orders
        on built.order_id = orders.order_id
    where
        built.has_known_order != (orders.order_id is not null)
        or built.order_status is distinct from orders.status
        or built.order_total_minor is distinct from orders.total_minor
    union
    -- The order's email is the charge's only when the charge has none of its own.
    select built.account_id, built.charge_id
    from {{ this }} as built
    inner join {{ ref('stg_careportals__orders') }} as orders
        on built.order_id = orders.order_id
    where
        built.email is distinct from orders.customer_email
        and exists (
            select 1 from {{ ref('stg_stripe__charges') }} as without_email
            where
                without_email.email is null
                and without_email.account_id = built.account_id
                and without_email.charge_id = built.charge_id
        )
),

{% endif -%}
charges as (
    select staged.* from {{ ref('stg_stripe__charges') }} as staged
    {%- if incremental %}
    where {{ keys_in('staged', 'changed_charges', ['account_id', 'charge_id']) }}
    {%- endif %}
),

orders as (
    select * from {{ ref('stg_careportals__orders') }}
    {%- if incremental %}
    where order_id in (select order_id from charges)
    {%- endif %}
),

charge_balance as (
    select balance.* from {{ ref('stg_stripe__balance_transactions') }} as balance
    where balance.type in ('charge', 'payment')
    {%- if incremental %}
        and {{ keys_in('balance', 'charges', ['account_id', 'balance_transaction_id']) }}
    {%- endif %}
),

categories as (
    select * from {{ ref('int_charges_categorised') }}
),

estimated_fees as (
    select * from {{ ref('int_charges_fees_estimated') }}
),

refunds_per_charge as (
    select
        refunds.account_id,
        refunds.charge_id,
        count(*) as refund_count,
        sum(case when refunds.status = 'succeeded' then refunds.amount_minor else 0 end)
            as succeeded_refunds_minor
    from {{ ref('stg_stripe__refunds') }} as refunds
    {%- if incremental %}
    where {{ keys_in('refunds', 'charges', ['account_id', 'charge_id']) }}
    {%- endif %}
    group by refunds.account_id, refunds.charge_id
),

final as (
    select
        charges.account_id,
        charges.charge_id,
        charges.created_at,
        charges.status,
        charges.captured,
        case
            when charges.status = 'failed' then 'failed'
            when charges.status = 'pending' then 'pending'
            when not charges.captured then 'uncaptured'
            when charges.refunded then 'refunded'
            when charges.amount_refunded_minor > 0 then 'partially_refunded'
            else 'succeeded'
        end as outcome,
        charges.currency,
        charges.currency_exponent,
        charges.amount_minor,
        charges.amount,
        charges.amount_refunded_minor,
        charges.amount_refunded,
        coalesce(refunds_per_charge.refund_count, 0) as refund_count,
        charges.order_id,
        orders.order_id is not null as has_known_order,
        orders.status as order_status,
        orders.total_minor as order_total_minor,
        charges.customer_id,
        coalesce(charges.email, orders.customer_email) as email,
        charges.payment_intent_id,
        charges.balance_transaction_id,
        charge_balance.currency as settlement_currency,
        charge_balance.exchange_rate,
        charge_balance.amount_minor as settlement_amount_minor,
        charge_balance.fee_minor,
        charge_balance.stripe_fee_minor,
        charge_balance.application_fee_minor,
        charge_balance.tax_fee_minor,
        estimated_fees.estimated_fee_minor,
        charge_balance.fee_minor - estimated_fees.estimated_fee_minor as fee_estimate_error_minor,
        charge_balance.net_minor,
        charge_balance.amount as settlement_amount,
        charge_balance.fee,
        charge_balance.net,
        categories.category,
        categories.category_source,
        charges.payment_method_type,
        charges.card_brand,
        charges.card_funding,
        charges.card_country,
        charges.failure_code,
        charges.failure_message,
        charges.decline_code,
        charges.description,
        charges.livemode,
        {{ build_started_at() }} as built_at
    from charges
    left join orders on charges.order_id = orders.order_id
    left join charge_balance
        on
            charges.account_id = charge_balance.account_id
            and charges.balance_transaction_id = charge_balance.balance_transaction_id
    left join categories
        on
            charges.account_id = categories.account_id
            and charges.charge_id = categories.charge_id
    left join estimated_fees
        on
            charges.account_id = estimated_fees.account_id
            and charges.charge_id = estimated_fees.charge_id
    left join refunds_per_charge
        on
            charges.account_id = refunds_per_charge.account_id
            and charges.charge_id = refunds_per_charge.charge_id
)

select * from final
