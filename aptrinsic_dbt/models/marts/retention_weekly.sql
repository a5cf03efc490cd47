with first_seen as (
    select identify_id, {{ week_start('first_seen_day') }} as cohort_week
    from {{ ref('int_user_first_seen') }}
),

activity as (
    select distinct identify_id, {{ week_start('day') }} as week
    from {{ ref('stg_events_session') }}
    where identify_id is not null
),

weeks as (
    select distinct week from activity
),

cohorts as (
    select cohort_week, count(*) as cohort_size
    from first_seen
    group by cohort_week
),

retained as (
    select first_seen.cohort_week, activity.week, count(*) as retained_users
    from first_seen
    inner join activity
        on activity.identify_id = first_seen.identify_id and activity.week >= first_seen.cohort_week
    group by first_seen.cohort_week, activity.week
)

select
    cohorts.cohort_week,
    cast((weeks.week - cohorts.cohort_week) / 7 as integer) as week_number,
    cohorts.cohort_size,
    coalesce(retained.retained_users, 0) as retained_users,
    coalesce({{ ratio('retained.retained_users', 'cohorts.cohort_size') }}, 0) as retention_rate
from cohorts
inner join weeks on weeks.week >= cohorts.cohort_week
left join retained on retained.cohort_week = cohorts.cohort_week and retained.week = weeks.week
