{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_window() }}",
    tags=['daily'],
    meta={'lookback_days': 0},
) }}

with matches as (
    select day, feature_id, identify_id, account_id
    from {{ ref('stg_events_feature_match') }}
    where {{ in_window('occurred_at') }} and feature_id is not null
),

active as (
    select distinct day, identify_id
    from {{ ref('stg_events_session') }}
    where {{ in_window('occurred_at') }} and identify_id is not null
),

dau as (
    select day, count(*) as dau from active group by day
),

{# First use of a feature by a user, over all loaded history. #}
first_use as (
    select feature_id, identify_id, min(day) as first_day
    from {{ ref('stg_events_feature_match') }}
    where feature_id is not null and identify_id is not null
    group by feature_id, identify_id
),

per_feature as (
    select
        matches.day,
        matches.feature_id,
        count(distinct matches.identify_id) as users,
        count(distinct matches.account_id) as accounts,
        count(*) as events,
        count(distinct case when first_use.first_day = matches.day then matches.identify_id end) as first_time_users,
        count(distinct active.identify_id) as active_users
    from matches
    left join first_use
        on first_use.feature_id = matches.feature_id and first_use.identify_id = matches.identify_id
    left join active
        on active.day = matches.day and active.identify_id = matches.identify_id
    group by matches.day, matches.feature_id
)

select
    per_feature.day,
    per_feature.feature_id,
    features.feature_name,
    features.feature_type,
    features.parent_feature_id,
    per_feature.users,
    per_feature.accounts,
    per_feature.events,
    per_feature.first_time_users,
    coalesce({{ ratio('per_feature.active_users', 'dau.dau') }}, 0) as share_of_dau
from per_feature
left join dau on dau.day = per_feature.day
left join {{ ref('stg_feature_flags') }} as features on features.feature_id = per_feature.feature_id
