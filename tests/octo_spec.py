"""The OCTO specification, for conformance tests written from it rather than from our
own responses.

The specification is octo-types' `src/openapi.yaml` (OpenAPI 3.0), as published in the npm
package `@octocloud/types`. It is fetched once from the npm registry (a package registry, like
the test dependencies), checked against the registry's integrity hash for the pinned version,
and cached under `.cache/` (not committed). Without the registry the conformance tests skip,
or fail when `TOURLINE_REQUIRE_SERVICES=1` (CI).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openapi_schema_validator import OAS30Validator

OCTO_TYPES_VERSION = "2.0.4"
OCTO_TYPES_TARBALL = f"https://registry.npmjs.org/@octocloud/types/-/types-{OCTO_TYPES_VERSION}.tgz"
# The registry's `dist.integrity` of that version (`npm view @octocloud/types@2.0.4`).
OCTO_TYPES_INTEGRITY = (
    "sha512-VLJVC/JAzB5dXg3xc7BjZohrwKHL24LxW/UPllWl/"
    "qyYO0bz7t0LzBaTXbvRBHKT2bAtFQhKA2bJtc2sKe6Edg=="
)
CACHE = Path(__file__).resolve().parent.parent / ".cache" / f"octo-types-{OCTO_TYPES_VERSION}"
REQUIRE_SERVICES = os.environ.get("TOURLINE_REQUIRE_SERVICES") == "1"


def _download() -> bytes:
    response = httpx.get(OCTO_TYPES_TARBALL, timeout=30, follow_redirects=True)
    response.raise_for_status()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(response.content).digest()).decode()
    if digest != OCTO_TYPES_INTEGRITY:
        raise RuntimeError(f"{OCTO_TYPES_TARBALL} does not match its integrity hash")
    with tarfile.open(fileobj=io.BytesIO(response.content)) as archive:
        member = archive.extractfile("package/src/openapi.yaml")
        if member is None:
            raise RuntimeError("the octo-types package has no src/openapi.yaml")
        return member.read()


@cache
def octo_spec() -> dict[str, Any]:
    """The OCTO OpenAPI document (skips, or fails in CI, when it cannot be had)."""
    path = CACHE / "openapi.yaml"
    if not path.exists():
        try:
            data = _download()
        except (httpx.HTTPError, OSError) as exc:
            message = f"the OCTO specification could not be fetched: {exc}"
            if REQUIRE_SERVICES:
                pytest.fail(message)
            pytest.skip(message)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(data)
        partial.replace(path)
    spec: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return spec


def _null_allowed(node: Any) -> Any:
    """`node` with every `nullable: true` beside an `allOf` read as the specification
    means it: the value may be null. (The specification writes a nullable object as
    `{nullable: true, allOf: [$ref]}` and its own examples give null there, e.g. an
    ON_HOLD booking's `cancellation`; a strict OpenAPI 3.0.3 reading refuses null inside
    the `allOf`.) Nothing else changes."""
    if isinstance(node, list):
        return [_null_allowed(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _null_allowed(value) for key, value in node.items()}
    if node.get("nullable") is True and "allOf" in node:
        rest = {key: value for key, value in node.items() if key != "nullable"}
        return {"anyOf": [{"enum": [None], "nullable": True}, rest]}
    return node


@cache
def _components() -> dict[str, Any]:
    components: dict[str, Any] = _null_allowed(octo_spec()["components"])
    return components


def _validator(schema: dict[str, Any]) -> OAS30Validator:
    # `$ref`s point into the document's components: they are resolved against a root
    # that carries them.
    return OAS30Validator({**_null_allowed(schema), "components": _components()})


def component(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = octo_spec()["components"]["schemas"][name]
    return schema


def response_schema(path: str, method: str, status: str = "200") -> dict[str, Any]:
    """The JSON schema of a documented response (`path` as the spec writes it, e.g.
    `/bookings/{uuid}/confirm`, with or without its trailing slash)."""
    paths = octo_spec()["paths"]
    operation = (paths.get(path) or paths[path.rstrip("/") + "/"])[method.lower()]
    response = operation["responses"][status]
    if "$ref" in response:
        response = _resolve(response["$ref"])
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def _resolve(ref: str) -> dict[str, Any]:
    node: Any = octo_spec()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    resolved: dict[str, Any] = node
    return resolved


def conformance_errors(body: Any, schema: dict[str, Any]) -> list[str]:
    """Every way `body` breaks `schema`, as `path: message` lines (empty when it conforms)."""
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(_validator(schema).iter_errors(body), key=lambda e: list(e.path))
    ]


def assert_conforms(body: Any, schema: dict[str, Any]) -> None:
    errors = conformance_errors(body, schema)
    assert errors == [], "\n".join(errors[:20])


def error_schemas() -> dict[str, dict[str, Any]]:
    """The error codes the specification documents (`INVALID_PRODUCT_ID`, ...), each with
    its schema (`ErrorInvalidProductID`: the code's own fields besides `error`). The code
    is read from the schema's name: its example is not to be trusted (2.0.4's
    `ErrorForbidden` example says BAD_REQUEST, where every endpoint's examples say
    FORBIDDEN)."""
    schemas = octo_spec()["components"]["schemas"]
    return {
        re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name.removeprefix("Error")).upper(): schema
        for name, schema in schemas.items()
        if name.startswith("Error")
    }
