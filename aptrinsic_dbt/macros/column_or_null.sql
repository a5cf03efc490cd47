{#
  An event table's own columns appear with their first value: dlt creates a column when a value
  arrives, so a table whose loaded days have had no event of its type yet holds only `event_id`,
  `date` and the loader's columns. Staging models read such columns through `column_or_null`,
  which is a typed NULL until the column exists.
#}

{# Column names of `relation`, read from the warehouse when the model runs (none at parse time). #}
{% macro column_names(relation) %}
    {%- if not execute -%}{{ return([]) }}{%- endif -%}
    {{ return(adapter.get_columns_in_relation(relation) | map(attribute='name') | list) }}
{% endmacro %}

{# `name` if it is among `columns` (from column_names), else NULL cast to `type`. #}
{% macro column_or_null(columns, name, type='varchar') -%}
    {%- if not execute or name in columns -%}{{ name }}{%- else -%}cast(null as {{ type }}){%- endif -%}
{%- endmacro %}
