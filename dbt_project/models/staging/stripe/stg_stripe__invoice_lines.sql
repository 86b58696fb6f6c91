{{ config(
    materialized='incremental',
    unique_key=['account_id', 'invoice_id'],
    pre_hook="{{ delete_changed_objects('invoices', 'invoice_id') }}",
) }}

{#- One row per invoice line: what each invoice billed for which subscription item, price and
    period. Stripe embeds the first lines of each invoice; `lines_complete` is false where an
    invoice holds more lines than were embedded. -#}
with

source as (
    select
        account_id,
        source_extracted_at,
        source_event_count,
        {{ parse_json('payload', {
            'id': 'varchar',
            'subscription': 'varchar',
            'status': 'varchar',
            'currency': 'varchar',
            'lines': {
                'has_more': 'boolean',
                'data': [{
                    'id': 'varchar',
                    'amount': 'bigint',
                    'quantity': 'bigint',
                    'period': {'start': 'bigint', 'end': 'bigint'},
                    'pricing': {'price_details': {'price': 'varchar'}},
                    'price': {'id': 'varchar'},
                    'parent': {
                        'type': 'varchar',
                        'subscription_item_details': {
                            'subscription': 'varchar',
                            'subscription_item': 'varchar',
                            'proration': 'boolean'
                        }
                    },
                    'discount_amounts': [{'amount': 'bigint', 'discount': 'varchar'}]
                }]
            }
        }) }} as invoice
    from {{ stripe_object_state('invoices', staged_id='invoice_id') }} as stripe_objects
),

lines as (
    select
        account_id,
        source_extracted_at,
        source_event_count,
        invoice.id as invoice_id,
        invoice.subscription as invoice_subscription_id,
        invoice.status as invoice_status,
        invoice.currency,
        not coalesce(invoice.lines.has_more, false) as lines_complete,
        {{ unnest_list('invoice.lines.data') }} as invoice_line
    from source
),

final as (
    select
        account_id,
        invoice_id,
        invoice_line.id as invoice_line_id,
        invoice_status,
        lower(currency) as currency,
        coalesce(
            invoice_line.parent.subscription_item_details.subscription, invoice_subscription_id
        ) as subscription_id,
        invoice_line.parent.subscription_item_details.subscription_item as subscription_item_id,
        coalesce(invoice_line.pricing.price_details.price, invoice_line.price.id) as price_id,
        coalesce(invoice_line.quantity, 1) as quantity,
        invoice_line.amount as amount_minor,
        {{ json_sum_amount_by_type('invoice_line.discount_amounts', none) }} as discount_minor,
        coalesce(invoice_line.parent.subscription_item_details.proration, false) as is_proration,
        {{ from_unix_seconds('invoice_line.period.start') }} as period_start,
        {{ from_unix_seconds('invoice_line.period."end"') }} as period_end,
        lines_complete,
        source_extracted_at,
        source_event_count
    from lines
)

select * from final
