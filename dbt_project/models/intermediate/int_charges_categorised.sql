{#- Each charge's category: metadata.category, else the first matching description rule,
    else the default category. -#}
with

charges as (
    select * from {{ ref('stg_stripe__charges') }}
),

rules as (
    select * from {{ ref('category_rules') }}
),

rule_matches as (
    select
        charges.account_id,
        charges.charge_id,
        rules.category,
        row_number() over (
            partition by charges.account_id, charges.charge_id order by rules.priority
        ) as match_rank
    from charges
    inner join rules on lower(charges.description) like lower(rules.pattern)
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
            charges.account_id = rule_matches.account_id
            and charges.charge_id = rule_matches.charge_id
            and rule_matches.match_rank = 1
)

select * from final
