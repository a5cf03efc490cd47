{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_window() }}",
    tags=['daily'],
    meta={'lookback_days': 0},
) }}

with activity as (
    select day, account_id, identify_id, 'session' as kind, cast(null as varchar) as feature_id
    from {{ ref('stg_events_session') }} where {{ in_window('occurred_at') }}
    union all
    select day, account_id, identify_id, 'page_view', null
    from {{ ref('stg_events_page_view') }} where {{ in_window('occurred_at') }}
    union all
    select day, account_id, identify_id, 'feature', feature_id
    from {{ ref('stg_events_feature_match') }} where {{ in_window('occurred_at') }}
    union all
    select day, account_id, identify_id, 'custom', null
    from {{ ref('stg_events_custom') }} where {{ in_window('occurred_at') }}
)

select
    day,
    coalesce(account_id, '(none)') as account_id,
    count(distinct case when kind = 'session' then identify_id end) as active_users,
    count(case when kind = 'session' then 1 end) as sessions,
    count(case when kind = 'page_view' then 1 end) as page_views,
    count(case when kind = 'feature' then 1 end) as feature_events,
    count(case when kind = 'custom' then 1 end) as custom_events,
    count(distinct feature_id) as distinct_features
from activity
group by day, coalesce(account_id, '(none)')
