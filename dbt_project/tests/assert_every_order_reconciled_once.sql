{{ config(meta={'dagster': {'ref': {'name': 'order_reconciliation'}}}) }}

-- Every CarePortals order appears exactly once in the reconciliation.
select
    orders.order_id,
    count(reconciliation.record_id) as rows_in_reconciliation
from {{ ref('stg_careportals__orders') }} as orders
left join {{ ref('order_reconciliation') }} as reconciliation
    on
        orders.order_id = reconciliation.order_id
        and reconciliation.record_type = 'order'
group by orders.order_id
having count(reconciliation.record_id) != 1
