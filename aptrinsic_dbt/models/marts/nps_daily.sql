{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_window() }}",
    tags=['daily'],
    meta={'lookback_days': 0},
) }}

with responses as (
    select day, coalesce(engagement_id, '(none)') as engagement_id, score
    from {{ ref('stg_survey_responses') }}
    where {{ in_window('occurred_at') }}
        and content_type = 'IN_APP_SURVEY_NPS'
        and score between 0 and 10
),

counted as (
    select
        day,
        engagement_id,
        count(*) as responses,
        count(case when score >= 9 then 1 end) as promoters,
        count(case when score between 7 and 8 then 1 end) as passives,
        count(case when score <= 6 then 1 end) as detractors
    from responses
    group by day, engagement_id
)

select
    counted.day,
    counted.engagement_id,
    engagements.engagement_name,
    counted.responses,
    counted.promoters,
    counted.passives,
    counted.detractors,
    100 * {{ ratio('counted.promoters - counted.detractors', 'counted.responses') }} as nps
from counted
left join {{ ref('stg_engagements') }} as engagements on engagements.engagement_id = counted.engagement_id
