{# Column names of `relation` starting with `prefix`, read from the warehouse when the model runs (none at parse time). #}
{% macro columns_with_prefix(relation, prefix) %}
    {%- if not execute -%}{{ return([]) }}{%- endif -%}
    {%- set names = [] -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
        {%- if column.name.startswith(prefix) -%}{%- do names.append(column.name) -%}{%- endif -%}
    {%- endfor -%}
    {{ return(names) }}
{% endmacro %}
