select
    event_id,
    nullif(identify_id, '') as identify_id,
    nullif(account_id, '') as account_id,
    nullif(engagement_id, '') as engagement_id,
    content_type,
    question_type,
    survey_state,
    cast(score as integer) as score,
    date as occurred_at,
    {{ utc_date('date') }} as day
from {{ source('aptrinsic', 'survey_responses') }}
