{#- Each charge's category: metadata.category, else the first matching description rule,
    else the default category. -#}
with

charges as (
    select * from {{ ref('stg_stripe__charges') }}
),

rules as (
    select * from {{ ref('category_rules') }}
),

-- The rules are matched once per distinct description, not once per charge: a shop has
-- far fewer descriptions than charges, and each match is a pattern test against every rule.
descriptions as (
    select distinct lower(description) as description
    from charges
    where metadata_category is null and description is not null
),

rule_matches as (
    select
        descriptions.description,
        rules.category,
        row_number() over (
            partition by descriptions.description order by rules.priority
        ) as match_rank
    from descriptions
    inner join rules on descriptions.description like lower(rules.pattern)
),

final as (
    select
        charges.account_id,
        charges.charge_id,
        coalesce(
            charges.metadata_category, rule_matches.category, '{{ var("default_category") }}'
        ) as category,
        case
            when charges.metadata_category is not null then 'metadata'
            when rule_matches.category is not null then 'description_rule'
            else 'default'
        end as category_source
    from charges
    left join rule_matches
        on
            lower(charges.description) = rule_matches.description
            and rule_matches.match_rank = 1
)

select * from final
