with

source as (
    select
        account_id,
        {{ parse_json('payload', {
            'id': 'varchar',
            'created': 'bigint',
            'name': 'varchar',
            'description': 'varchar',
            'active': 'boolean',
            'metadata': {'category': 'varchar'}
        }) }} as product
    from {{ stripe_object_state('products') }} as stripe_objects
),

final as (
    select
        account_id,
        product.id as product_id,
        {{ from_unix_seconds('product.created') }} as created_at,
        product.name as product_name,
        product.description,
        product.active as is_active,
        product.metadata.category
    from source
)

select * from final
