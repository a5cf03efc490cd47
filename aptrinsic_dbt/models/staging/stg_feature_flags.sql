select
    id as feature_id,
    name as feature_name,
    type as feature_type,
    nullif(parent_feature_id, '') as parent_feature_id,
    status as feature_status
from {{ source('aptrinsic', 'feature_flags') }}
