{# Column names of `relation` starting with `prefix`, read from the warehouse when the model runs (none at parse time). #}
{% macro columns_with_prefix(relation, prefix) %}
    {%- set names = [] -%}
    {%- for name in column_names(relation) -%}
        {%- if name.startswith(prefix) -%}{%- do names.append(name) -%}{%- endif -%}
    {%- endfor -%}
    {{ return(names) }}
{% endmacro %}
