{# Marts land in exactly the schema they name (aptrinsic_marts), not <target schema>_aptrinsic_marts. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name if custom_schema_name else target.schema }}
{%- endmacro %}
