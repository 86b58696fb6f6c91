-- Stripe's net is amount minus fee on every balance transaction, and the fee is the sum of
-- its fee_details.
select
    balance_transaction_id,
    amount_minor,
    fee_minor,
    net_minor
from {{ ref('stg_stripe__balance_transactions') }}
where
    net_minor != amount_minor - fee_minor
    or fee_minor != stripe_fee_minor + application_fee_minor + tax_fee_minor
