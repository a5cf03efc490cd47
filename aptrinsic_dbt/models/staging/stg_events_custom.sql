{% set columns = column_names(source('aptrinsic', 'events_custom')) %}
select
    event_id,
    nullif({{ column_or_null(columns, 'identify_id') }}, '') as identify_id,
    nullif({{ column_or_null(columns, 'account_id') }}, '') as account_id,
    {{ column_or_null(columns, 'event_name') }} as event_name,
    date as occurred_at,
    {{ utc_date('date') }} as day
from {{ source('aptrinsic', 'events_custom') }}
