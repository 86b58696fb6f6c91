{{ config(materialized='incremental', unique_key=['account_id', 'balance_transaction_id']) }}

with

source as (
    select
        account_id,
        source_extracted_at,
        source_event_count,
        {{ parse_json('payload', {
            'id': 'varchar',
            'created': 'bigint',
            'available_on': 'bigint',
            'type': 'varchar',
            'reporting_category': 'varchar',
            'source': 'varchar',
            'status': 'varchar',
            'currency': 'varchar',
            'amount': 'bigint',
            'fee': 'bigint',
            'net': 'bigint',
            'exchange_rate': 'double',
            'description': 'varchar',
            'fee_details': [{'amount': 'bigint', 'type': 'varchar'}]
        }) }} as txn
    from {{ stripe_object_state('balance_transactions', staged_id='balance_transaction_id') }}
        as stripe_objects
),

currencies as (
    select * from {{ ref('currency_exponents') }}
),

final as (
    select
        source.account_id,
        source.txn.id as balance_transaction_id,
        {{ from_unix_seconds('source.txn.created') }} as created_at,
        {{ from_unix_seconds('source.txn.available_on') }} as available_on,
        source.txn.type,
        source.txn.reporting_category,
        source.txn.source as source_id,
        source.txn.status,
        lower(source.txn.currency) as currency,
        currencies.exponent as currency_exponent,
        source.txn.amount as amount_minor,
        source.txn.fee as fee_minor,
        source.txn.net as net_minor,
        {{ json_sum_amount_by_type('source.txn.fee_details', 'stripe_fee') }} as stripe_fee_minor,
        {{ json_sum_amount_by_type('source.txn.fee_details', 'application_fee') }}
            as application_fee_minor,
        {{ json_sum_amount_by_type('source.txn.fee_details', 'tax') }} as tax_fee_minor,
        {{ to_major_units('source.txn.amount') }} as amount,
        {{ to_major_units('source.txn.fee') }} as fee,
        {{ to_major_units('source.txn.net') }} as net,
        source.txn.exchange_rate,
        source.txn.description,
        currencies.currency is null as is_unknown_currency,
        source.source_extracted_at,
        source.source_event_count,
        {{ build_started_at() }} as staged_at
    from source
    left join currencies on lower(source.txn.currency) = currencies.currency
)

select * from final
