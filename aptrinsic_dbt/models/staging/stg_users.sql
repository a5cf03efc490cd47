select
    identify_id,
    nullif(account_id, '') as account_id,
    first_visit_date,
    last_seen_date,
    sign_up_date
from {{ source('aptrinsic', 'users') }}
