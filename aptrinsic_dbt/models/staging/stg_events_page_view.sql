select
    event_id,
    nullif(identify_id, '') as identify_id,
    nullif(account_id, '') as account_id,
    nullif(session_id, '') as session_id,
    path,
    date as occurred_at,
    {{ utc_date('date') }} as day
from {{ source('aptrinsic', 'events_page_view') }}
