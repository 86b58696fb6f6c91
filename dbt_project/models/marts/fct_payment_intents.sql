{{ config(
    materialized='incremental',
    unique_key=['account_id', 'payment_intent_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
) }}

{#- One row per payment intent: a customer's payment, whatever number of charge attempts it
    took. Its outcome: succeeded, uncaptured (authorised, not captured: its own bucket, not
    a failure), failed (no successful attempt and waiting for another payment method),
    canceled, or in_progress.

    Incremental: a build after the first computes again only the payment intents staged
    since this table's last build (`built_at`), or with one of their charges staged since. A
    change to this model rebuilds it in full (macros/incremental.sql). -#}
{%- set incremental = is_incremental() %}
with

{% if incremental -%}
changed_intents as (
    select account_id, payment_intent_id
    from {{ ref('stg_stripe__payment_intents') }}
    where {{ staged_since_last_build() }}
    union
    select account_id, payment_intent_id
    from {{ ref('stg_stripe__charges') }}
    where {{ staged_since_last_build() }} and payment_intent_id is not null
),

{% endif -%}
intents as (
    select staged.* from {{ ref('stg_stripe__payment_intents') }} as staged
    {%- if incremental %}
    where {{ keys_in('staged', 'changed_intents', ['account_id', 'payment_intent_id']) }}
    {%- endif %}
),

charges as (
    select staged.* from {{ ref('stg_stripe__charges') }} as staged
    {%- if incremental %}
    where {{ keys_in('staged', 'changed_intents', ['account_id', 'payment_intent_id']) }}
    {%- endif %}
),

attempts as (
    select
        account_id,
        payment_intent_id,
        count(*) as attempt_count,
        sum(case when status = 'failed' then 1 else 0 end) as failed_attempt_count,
        max(created_at) as last_attempt_at,
        -- The latest failed attempt's codes (the later charge id on the same second), in the
        -- same pass as the counts rather than a ranking of every failed charge.
        first(
            struct_pack(failure_code, decline_code)
            order by created_at desc, charge_id desc
        ) filter (where status = 'failed') as last_failure
    from charges
    where payment_intent_id is not null
    group by account_id, payment_intent_id
),

final as (
    select
        intents.account_id,
        intents.payment_intent_id,
        intents.created_at,
        intents.status,
        case
            when intents.status = 'succeeded' then 'succeeded'
            when intents.status = 'requires_capture' then 'uncaptured'
            when intents.status = 'canceled' then 'canceled'
            when
                intents.status = 'requires_payment_method'
                and coalesce(attempts.failed_attempt_count, 0) > 0
                then 'failed'
            else 'in_progress'
        end as outcome,
        intents.currency,
        intents.amount_minor,
        intents.amount,
        intents.amount_received_minor,
        intents.customer_id,
        intents.order_id,
        coalesce(attempts.attempt_count, 0) as attempt_count,
        coalesce(attempts.failed_attempt_count, 0) as failed_attempt_count,
        coalesce(intents.last_error_code, attempts.last_failure.failure_code) as last_failure_code,
        coalesce(intents.last_decline_code, attempts.last_failure.decline_code)
            as last_decline_code,
        {{ build_started_at() }} as built_at
    from intents
    left join attempts
        on
            intents.account_id = attempts.account_id
            and intents.payment_intent_id = attempts.payment_intent_id
)

select * from final
