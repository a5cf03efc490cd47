{%- set lookback_days = 29 -%}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_window() }}",
    tags=['daily'],
    meta={'lookback_days': lookback_days},
) }}
{%- set days = window_bounds() %}

with sessions as (
    select day, identify_id
    from {{ ref('stg_events_session') }}
    where {{ in_window('occurred_at', lookback_days) }}
),

loaded as (
    select min(day) as first_day, max(day) as last_day from {{ ref('stg_events_session') }}
),

spine as (
    select spine.day
    from ({{ day_spine(days[0], days[1]) }}) as spine
    inner join loaded on spine.day between loaded.first_day and loaded.last_day
),

rolling as (
    select
        spine.day,
        count(distinct case when sessions.day = spine.day then sessions.identify_id end) as dau,
        count(distinct case when sessions.day > spine.day - 7 then sessions.identify_id end) as wau,
        count(distinct sessions.identify_id) as mau,
        count(case when sessions.day = spine.day then 1 end) as sessions,
        count(distinct case when sessions.day = spine.day and first_seen.first_seen_day = spine.day
            then sessions.identify_id end) as new_users
    from spine
    left join sessions
        on sessions.day between spine.day - {{ lookback_days }} and spine.day
    left join {{ ref('int_user_first_seen') }} as first_seen
        on first_seen.identify_id = sessions.identify_id
    group by spine.day
)

select
    day,
    dau,
    wau,
    mau,
    {{ ratio('dau', 'mau') }} as dau_over_mau,
    sessions,
    new_users
from rolling
