{{ config(severity='warn') }}
-- A customer's charges in one presentment currency settle in one currency (the account's
-- settlement currency for it), or dim_customers would add their fees and nets across
-- currencies and name only one of them.
select
    account_id,
    customer_id,
    currency,
    count(distinct settlement_currency) as settlement_currencies
from {{ ref('fct_charges') }}
where customer_id is not null and settlement_currency is not null
group by account_id, customer_id, currency
having count(distinct settlement_currency) > 1
