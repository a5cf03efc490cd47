{#
  The window a daily-partitioned model rebuilds: the half-open [start, end) of UTC days that
  Dagster passes as --vars '{start: ..., end: ...}'. Without them (a plain `dbt build`) the window
  runs from APTRINSIC_START_DATE (as the partitions do) to tomorrow, UTC, i.e. every loaded day.
#}
{% macro window_bounds() %}
    {%- set dt = modules.datetime -%}
    {%- set start = var('start') or env_var('APTRINSIC_START_DATE', '2026-01-01') -%}
    {%- set end = var('end') or (dt.datetime.utcnow().date() + dt.timedelta(days=1)).isoformat() -%}
    {{ return((dt.date.fromisoformat(start | string), dt.date.fromisoformat(end | string))) }}
{% endmacro %}

{# The window moved back by `lookback_days`: a rolling metric for day D reads D - lookback_days .. D. #}
{% macro window_days(lookback_days=0) %}
    {%- set bounds = window_bounds() -%}
    {{ return((bounds[0] - modules.datetime.timedelta(days=lookback_days), bounds[1])) }}
{% endmacro %}

{% macro date_literal(day) -%}
    cast('{{ day.isoformat() }}' as date)
{%- endmacro %}

{% macro utc_timestamp_literal(day) -%}
    cast('{{ day.isoformat() }} 00:00:00+00' as timestamp with time zone)
{%- endmacro %}

{# `column` (a UTC timestamp with time zone) falls in the window, widened back by `lookback_days`. #}
{% macro in_window(column, lookback_days=0) -%}
    {%- set bounds = window_days(lookback_days) -%}
    {{ column }} >= {{ utc_timestamp_literal(bounds[0]) }} and {{ column }} < {{ utc_timestamp_literal(bounds[1]) }}
{%- endmacro %}

{# `day` (a DATE) falls in the window. #}
{% macro day_in_window(column='day') -%}
    {%- set bounds = window_bounds() -%}
    {{ column }} >= {{ date_literal(bounds[0]) }} and {{ column }} < {{ date_literal(bounds[1]) }}
{%- endmacro %}

{#
  pre_hook of the daily marts: a partition rebuilds exactly its days. Deleting the window first
  (rather than delete+insert on the new rows' keys) also removes rows whose events disappeared
  when the raw partition was re-loaded.
#}
{% macro delete_window(column='day') -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ day_in_window(column) }}
    {%- endif -%}
{%- endmacro %}
