select
    id as engagement_id,
    name as engagement_name,
    type as engagement_type,
    state as engagement_state
from {{ source('aptrinsic', 'engagements') }}
