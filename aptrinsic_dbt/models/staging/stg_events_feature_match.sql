{% set columns = column_names(source('aptrinsic', 'events_feature_match')) %}
select
    event_id,
    nullif({{ column_or_null(columns, 'identify_id') }}, '') as identify_id,
    nullif({{ column_or_null(columns, 'account_id') }}, '') as account_id,
    nullif({{ column_or_null(columns, 'feature_id') }}, '') as feature_id,
    date as occurred_at,
    {{ utc_date('date') }} as day
from {{ source('aptrinsic', 'events_feature_match') }}
