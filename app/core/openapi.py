"""OpenAPI details Litestar cannot infer from a handler's signature."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

# Litestar's own schema of msgspec Structs, which this extends (not exported elsewhere).
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.typing import FieldDefinition

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator


@dataclass
class JsonOrCsvOperation(Operation):
    """An operation whose 200 is JSON, or CSV with `format=csv` (manifests, statements)."""

    def __post_init__(self) -> None:
        success = (self.responses or {}).get("200")
        content = getattr(success, "content", None)
        if content is not None:
            content["text/csv"] = OpenAPIMediaType(
                schema=Schema(type=OpenAPIType.STRING, description="UTF-8 CSV with a BOM")
            )


@dataclass
class PrometheusTextOperation(Operation):
    """/metrics: Prometheus' text exposition format."""

    def __post_init__(self) -> None:
        success = (self.responses or {}).get("200")
        if success is not None and hasattr(success, "content"):
            success.content = {
                "text/plain": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
            }


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    """Structs that refuse unknown fields (`forbid_unknown_fields=True`, every request
    body) say so: `additionalProperties: false`, as they are enforced."""

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        config = getattr(field_definition.type_, "__struct_config__", None)
        if isinstance(config, msgspec.structs.StructConfig) and config.forbid_unknown_fields:
            schema.additional_properties = False
        return schema


# JSON Schema keywords whose Litestar `Schema` field is not the keyword in snake case.
_SCHEMA_FIELDS = {"not": "schema_not", "if": "schema_if", "else": "schema_else"}
_SUBSCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}
_SUBSCHEMAS = {"items", "not", "additionalProperties", "contains"}


def type_schema(model: Any) -> Schema:
    """The OpenAPI schema of a msgspec type (its definitions inlined): for a body a handler
    reads itself, which Litestar therefore cannot see in its signature."""
    root = msgspec.json.schema(model)
    return _schema(root, root.pop("$defs", {}))


def _schema(node: dict[str, Any], definitions: dict[str, Any]) -> Schema:
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _schema(definitions[ref.rsplit("/", 1)[1]], definitions)
    fields: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            value = {name: _schema(item, definitions) for name, item in value.items()}
        elif key in _SUBSCHEMA_LISTS:
            value = [_schema(item, definitions) for item in value]
        elif key in _SUBSCHEMAS and isinstance(value, dict):
            value = _schema(value, definitions)
        elif key == "type":
            value = (
                OpenAPIType(value) if isinstance(value, str) else [OpenAPIType(v) for v in value]
            )
        name = _SCHEMA_FIELDS.get(key) or re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
        fields[name] = value
    return Schema(**fields)


def json_body_operation(model: Any, *, required: bool = True) -> type[Operation]:
    """An operation class documenting `model` as its JSON request body (`operation_class=`)
    for a handler that reads and checks the body itself."""
    schema = type_schema(model)

    @dataclass
    class JsonBodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                required=required,
                content={"application/json": OpenAPIMediaType(schema=schema)},
            )

    return JsonBodyOperation
