{% set columns = column_names(source('aptrinsic', 'survey_responses')) %}
select
    event_id,
    nullif({{ column_or_null(columns, 'identify_id') }}, '') as identify_id,
    nullif({{ column_or_null(columns, 'account_id') }}, '') as account_id,
    nullif({{ column_or_null(columns, 'engagement_id') }}, '') as engagement_id,
    {{ column_or_null(columns, 'content_type') }} as content_type,
    {{ column_or_null(columns, 'question_type') }} as question_type,
    {{ column_or_null(columns, 'survey_state') }} as survey_state,
    cast({{ column_or_null(columns, 'score', 'bigint') }} as integer) as score,
    date as occurred_at,
    {{ utc_date('date') }} as day
from {{ source('aptrinsic', 'survey_responses') }}
