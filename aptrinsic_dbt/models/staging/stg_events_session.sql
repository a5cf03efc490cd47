{% set columns = column_names(source('aptrinsic', 'events_session')) %}
select
    event_id,
    nullif({{ column_or_null(columns, 'identify_id') }}, '') as identify_id,
    nullif({{ column_or_null(columns, 'account_id') }}, '') as account_id,
    nullif({{ column_or_null(columns, 'session_id') }}, '') as session_id,
    {{ column_or_null(columns, 'user_type') }} as user_type,
    date as occurred_at,
    {{ utc_date('date') }} as day
from {{ source('aptrinsic', 'events_session') }}
