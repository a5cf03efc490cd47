{# Custom attributes are columns custom_attributes__<key> that come and go with the data: all of them pass through. #}
select
    id as account_id,
    name as account_name,
    plan,
    industry,
    number_of_employees,
    number_of_users,
    health_score,
    csm,
    renewal_date,
    create_date,
    last_seen_date{% for column in columns_with_prefix(source('aptrinsic', 'accounts'), 'custom_attributes__') %},
    {{ adapter.quote(column) }}{% endfor %}
from {{ source('aptrinsic', 'accounts') }}
