with as_of as (
    {# Measured up to the last loaded day, so a late load never reads as a drop in usage. #}
    select coalesce(max(day), current_date) as as_of_day from {{ ref('stg_events_session') }}
),

sessions as (
    select
        account_id,
        count(distinct case when day > as_of_day - 7 then identify_id end) as active_users_7d,
        count(distinct case when day > as_of_day - 30 then identify_id end) as active_users_30d,
        count(distinct case when day > as_of_day - 30 then day end) as active_days_30d,
        count(case when day > as_of_day - 30 then 1 end) as sessions_30d,
        count(case when day <= as_of_day - 30 then 1 end) as sessions_prior_30d
    from {{ ref('stg_events_session') }}
    cross join as_of
    where day > as_of_day - 60 and day <= as_of_day and account_id is not null
    group by account_id
),

last_seen as (
    select account_id, max(occurred_at) as last_seen
    from {{ ref('stg_events_session') }}
    where account_id is not null
    group by account_id
),

features as (
    select account_id, count(distinct feature_id) as feature_breadth_30d
    from {{ ref('stg_events_feature_match') }}
    cross join as_of
    where day > as_of_day - 30 and day <= as_of_day and account_id is not null
    group by account_id
),

nps as (
    select
        account_id,
        100 * {{ ratio(
            'count(case when score >= 9 then 1 end) - count(case when score <= 6 then 1 end)', 'count(*)'
        ) }} as nps_90d
    from {{ ref('stg_survey_responses') }}
    cross join as_of
    where day > as_of_day - 90 and day <= as_of_day and account_id is not null
        and content_type = 'IN_APP_SURVEY_NPS' and score between 0 and 10
    group by account_id
)

select
    accounts.*,
    as_of.as_of_day,
    coalesce(sessions.active_users_7d, 0) as active_users_7d,
    coalesce(sessions.active_users_30d, 0) as active_users_30d,
    coalesce(sessions.active_days_30d, 0) as active_days_30d,
    coalesce(features.feature_breadth_30d, 0) as feature_breadth_30d,
    coalesce(sessions.sessions_30d, 0) as sessions_30d,
    coalesce(sessions.sessions_prior_30d, 0) as sessions_prior_30d,
    {{ ratio('sessions.sessions_30d', 'sessions.sessions_prior_30d') }} - 1 as usage_trend,
    nps.nps_90d,
    last_seen.last_seen
from {{ ref('stg_accounts') }} as accounts
cross join as_of
left join sessions on sessions.account_id = accounts.account_id
left join last_seen on last_seen.account_id = accounts.account_id
left join features on features.account_id = accounts.account_id
left join nps on nps.account_id = accounts.account_id
