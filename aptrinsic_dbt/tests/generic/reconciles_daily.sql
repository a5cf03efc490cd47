{#
  Per day of the window being built, `aggregate` of the mart's `column_name` equals `expression`
  over the raw source table's rows of that UTC day (with `source_where`). Returns the days that differ.
  `columns` names the source columns `expression` and `source_where` read, with their types: a NULL
  of that type while the table does not have them yet (column_or_null.sql).
#}
{% test reconciles_daily(model, column_name, source_table, aggregate='sum', expression='count(*)', source_where='1 = 1', columns={}) %}
{%- set present = column_names(source('aptrinsic', source_table)) -%}
with mart as (
    select day, {{ aggregate }}({{ column_name }}) as mart_value
    from {{ model }}
    where {{ day_in_window('day') }}
    group by day
),

raw as (
    select {{ utc_date('date') }} as day, {{ expression }} as raw_value
    from (
        select date{% for name, type in columns.items() %}, {{ column_or_null(present, name, type) }} as {{ name }}{% endfor %}
        from {{ source('aptrinsic', source_table) }}
    ) as source_rows
    where {{ in_window('date') }} and ({{ source_where }})
    group by {{ utc_date('date') }}
)

select coalesce(mart.day, raw.day) as day, mart.mart_value, raw.raw_value
from mart
full outer join raw on raw.day = mart.day
where coalesce(mart.mart_value, 0) <> coalesce(raw.raw_value, 0)
{% endtest %}
