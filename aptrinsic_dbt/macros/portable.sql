{#
  The few spots where DuckDB and Postgres differ, or might: every model calls these instead of
  writing the dialect inline. Both default implementations run on DuckDB and Postgres; a warehouse
  that needs another form adds `<adapter>__<macro>`.
#}

{# The UTC calendar day of a timestamp with time zone, whatever the session's TimeZone. #}
{% macro utc_date(column) -%}
    {{ return(adapter.dispatch('utc_date')(column)) }}
{%- endmacro %}
{% macro default__utc_date(column) -%}
    cast(({{ column }} at time zone 'UTC') as date)
{%- endmacro %}

{# One row per day, column `day` (DATE), for the half-open [first, last) of two datetime.date. #}
{% macro day_spine(first, last) -%}
    {{ return(adapter.dispatch('day_spine')(first, last)) }}
{%- endmacro %}
{% macro default__day_spine(first, last) -%}
    select cast(spine.d as date) as day
    from generate_series(
        cast('{{ first.isoformat() }}' as timestamp),
        cast('{{ (last - modules.datetime.timedelta(days=1)).isoformat() }}' as timestamp),
        interval '1 day'
    ) as spine(d)
{%- endmacro %}

{# Monday of the ISO week of a DATE, as a DATE. #}
{% macro week_start(column) -%}
    {{ return(adapter.dispatch('week_start')(column)) }}
{%- endmacro %}
{% macro default__week_start(column) -%}
    cast(date_trunc('week', {{ column }}) as date)
{%- endmacro %}

{# a / b as a double, NULL when b is 0. #}
{% macro ratio(numerator, denominator) -%}
    cast({{ numerator }} as double precision) / nullif({{ denominator }}, 0)
{%- endmacro %}
