"""OpenAPI details Litestar cannot infer from a handler's signature."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

# Litestar's own schema of msgspec Structs, which this extends (not exported elsewhere).
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, Schema
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
