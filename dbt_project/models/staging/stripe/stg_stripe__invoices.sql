{{ config(materialized='incremental', unique_key=['account_id', 'invoice_id']) }}

with

source as (
    select
        account_id,
        source_extracted_at,
        source_event_count,
        -- The fields read: stripe_fields.invoices in dbt_project.yml.
        object as invoice
    from {{ stripe_object_state(
        'invoices', staged_id='invoice_id', fields=var('stripe_fields')['invoices']
    ) }} as stripe_objects
),

currencies as (
    select * from {{ ref('currency_exponents') }}
),

final as (
    select
        source.account_id,
        source.invoice.id as invoice_id,
        source.invoice.number as invoice_number,
        source.invoice.customer as customer_id,
        source.invoice.subscription as subscription_id,
        {{ from_unix_seconds('source.invoice.created') }} as created_at,
        source.invoice.status,
        source.invoice.billing_reason,
        lower(source.invoice.currency) as currency,
        source.invoice.amount_due as amount_due_minor,
        source.invoice.amount_paid as amount_paid_minor,
        source.invoice.amount_remaining as amount_remaining_minor,
        {{ to_major_units('source.invoice.amount_paid') }} as amount_paid,
        {{ from_unix_seconds('source.invoice.period_start') }} as period_start,
        {{ from_unix_seconds('source.invoice.period_end') }} as period_end,
        currencies.currency is null as is_unknown_currency,
        source.source_extracted_at,
        source.source_event_count
    from source
    left join currencies on lower(source.invoice.currency) = currencies.currency
)

select * from final
