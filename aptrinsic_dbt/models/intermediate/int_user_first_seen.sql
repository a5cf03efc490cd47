{#
  The day each user was first seen: their first visit as Gainsight PX records it on the user
  (first_visit_date), or their first loaded session if that is earlier or the date is missing.
  Reads all loaded history, so a back-filled earlier session can move it.
#}
select identify_id, min(first_day) as first_seen_day
from (
    select identify_id, day as first_day
    from {{ ref('stg_events_session') }}
    where identify_id is not null
    union all
    select identify_id, {{ utc_date('first_visit_date') }} as first_day
    from {{ ref('stg_users') }}
    where first_visit_date is not null
) as seen
group by identify_id
