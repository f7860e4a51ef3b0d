"""OpenAPI details Litestar cannot infer from a handler's signature."""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, Schema


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
