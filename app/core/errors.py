"""Domain errors and their one translation into RFC 9457 problem details."""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from app.core.i18n import N_, _, ngettext

logger = logging.getLogger("tourline.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(msgspec.Struct, kw_only=True):
    field: str
    message: str
    source: str = "body"


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details, plus a stable machine `code` and offending `errors`."""

    type: str = "about:blank"
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class DomainError(Exception):
    """A failure the client can understand; `code` is stable, messages are translated."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        errors: Sequence[FieldError] | None = None,
    ) -> None:
        super().__init__(detail or self.code)
        self.detail = detail
        self.headers: dict[str, str] = {}
        if code:
            self.code = code
        self.errors = list(errors) if errors else None

    def title(self) -> str:
        return _("The request could not be processed")


class InvalidInput(DomainError):
    status_code = 400
    code = "validation_error"

    def __init__(self, field: str, message: str, *, source: str = "body", code: str | None = None):
        super().__init__(
            message, code=code, errors=[FieldError(field=field, message=message, source=source)]
        )

    def title(self) -> str:
        return _("Some fields are invalid")


class NotFound(DomainError):
    status_code = 404
    code = "not_found"

    def title(self) -> str:
        return _("Not found")


class Conflict(DomainError):
    status_code = 409
    code = "conflict"

    def title(self) -> str:
        return _("The request conflicts with the current state")


class Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"

    def title(self) -> str:
        return _("Authentication required")


class TooManyRequests(DomainError):
    status_code = 429
    code = "rate_limited"

    def __init__(
        self, detail: str | None = None, *, code: str | None = None, retry_after: int
    ) -> None:
        super().__init__(detail, code=code)
        self.headers = {"Retry-After": str(retry_after)}

    def title(self) -> str:
        return _("Too many requests")


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"

    def title(self) -> str:
        return _("You are not allowed to do this")


class DatabaseUnavailable(Exception):
    """The database cannot be reached or did not answer in time (on SQLite: its write lock
    stayed taken). Neither the client's fault nor a bug: a 503 to retry in a moment. Not a
    DomainError, so that no service takes it for a broken rule (a rule's answer may be
    stored, e.g. for an idempotency key; an outage's must not)."""

    # Seconds a client should wait: about one connect and one statement timeout.
    retry_after = 5

    def __init__(self, code: str = "database_unavailable") -> None:
        super().__init__(code)
        self.code = code


def problem_response(request: Request[Any, Any, Any], problem: Problem) -> Response[Problem]:
    problem.instance = problem.instance or request.url.path
    headers = {}
    if problem.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Response(
        content=problem,
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def handle_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Problem]:
    response = problem_response(
        request,
        Problem(
            title=exc.title(),
            status=exc.status_code,
            code=exc.code,
            detail=exc.detail,
            errors=exc.errors,
        ),
    )
    response.headers.update(exc.headers)
    return response


_NAMED_FIELD = re.compile(r"(?:unknown|missing required) field `([^`]+)`")
_AT_PATH = re.compile(r"\s+- at `\$\.?([^`]*)`$")


def field_of(key: str, message: str) -> tuple[str, str]:
    """Name the offending field as a client wrote it, e.g. `days[0].title` or `status`."""
    if key == "data" and message == "'data'":
        # Litestar's KeyError when a request that needs a body has none.
        return "body", _("Send a JSON document in the request body.")
    path = key if key not in ("", "data", "body") else ""
    at = _AT_PATH.search(message)
    if at:
        path = at.group(1)
        message = message[: at.start()]
    named = _NAMED_FIELD.search(message)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return (path or "body").removeprefix("$.").removeprefix("."), translate_validation(message)


_TYPE_NAMES = {
    "int": N_("a whole number"),
    "float": N_("a number"),
    "str": N_("text"),
    "bool": N_("true or false"),
    "object": N_("an object"),
    "array": N_("a list"),
    "null": N_("null"),
}


def _type_name(name: str) -> str:
    return _(_TYPE_NAMES[name]) if name in _TYPE_NAMES else name


def translate_validation(message: str) -> str:
    """msgspec's validation messages, in the reader's language (the common ones)."""
    message = message.strip()
    if match := re.fullmatch(r"Expected `(\w+)`(?: \| `\w+`)*, got `(\w+)`", message):
        return _("Expected {expected}, got {actual}.").format(
            expected=_type_name(match.group(1)), actual=_type_name(match.group(2))
        )
    if message.startswith("Object missing required field"):
        return _("This field is required.")
    if message.startswith("Object contains unknown field"):
        return _("This field is not allowed here.")
    if match := re.fullmatch(r"Expected `str` of length >= (\d+)", message):
        count = int(match.group(1))
        return ngettext(
            "Must be at least {count} character.", "Must be at least {count} characters.", count
        ).format(count=count)
    if match := re.fullmatch(r"Expected `str` of length <= (\d+)", message):
        count = int(match.group(1))
        return ngettext(
            "Must be at most {count} character.", "Must be at most {count} characters.", count
        ).format(count=count)
    if match := re.fullmatch(r"Expected `(?:array|object)` of length >= (\d+)", message):
        count = int(match.group(1))
        return ngettext(
            "Give at least {count} item.", "Give at least {count} items.", count
        ).format(count=count)
    if match := re.fullmatch(r"Expected `(?:array|object)` of length <= (\d+)", message):
        count = int(match.group(1))
        return ngettext("Give at most {count} item.", "Give at most {count} items.", count).format(
            count=count
        )
    if match := re.fullmatch(r"Expected `(?:int|float)` >= (\S+)", message):
        return _("Must be {minimum} or more.").format(minimum=match.group(1))
    if match := re.fullmatch(r"Expected `(?:int|float)` <= (\S+)", message):
        return _("Must be {maximum} or less.").format(maximum=match.group(1))
    if message.startswith("Expected `str` matching regex"):
        return _("This has the wrong format.")
    if message.startswith("Invalid enum value"):
        return _("This is not one of the allowed values.")
    if message.startswith("Invalid RFC3339 encoded datetime"):
        return _("Give a date and time with its offset, e.g. 2026-05-16T08:30:00+08:00.")
    if message.startswith("Invalid RFC3339 encoded date"):
        return _("Give a date as YYYY-MM-DD.")
    if message.startswith("Invalid UUID"):
        return _("This is not a valid id.")
    return message


def _client_name(request: Request[Any, Any, Any], key: str) -> str:
    """A parameter's name in the request (`from`), not in the handler's signature (`date_from`)."""
    handler = request.scope.get("route_handler")
    signature = getattr(handler, "parsed_fn_signature", None)
    field = signature.parameters.get(key) if signature is not None else None
    kwarg = getattr(field, "kwarg_definition", None)
    for alias in ("query", "header", "name"):
        if getattr(kwarg, alias, None):
            return str(getattr(kwarg, alias))
    return key


def _field_errors(request: Request[Any, Any, Any], extra: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    if isinstance(extra, list):
        for item in extra:
            if isinstance(item, dict):
                source = item.get("source") or "body"
                # Litestar's ParamType is a (str, Enum): its str() is "ParamType.QUERY".
                source = getattr(source, "value", source)
                key = str(item.get("key") or "")
                if source != "body":
                    key = _client_name(request, key)
                field, message = field_of(key, str(item.get("message", "")))
                errors.append(FieldError(field=field, message=message, source=str(source)))
    return errors


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    detail: str | None = None
    errors: list[FieldError] | None = None
    if isinstance(exc, ValidationException):
        errors = _field_errors(request, exc.extra)
        if errors:
            code, title = "validation_error", _("Some fields are invalid")
            detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        else:
            code, title = "malformed_request", _("The request body could not be read")
            detail = _("Send a valid JSON document.")
    elif isinstance(exc, NotFoundException):
        code, title = "not_found", _("Not found")
    elif isinstance(exc, MethodNotAllowedException):
        code, title = "method_not_allowed", _("Method not allowed")
    elif isinstance(exc, NotAuthorizedException):
        code, title = "unauthorized", _("Authentication required")
    elif isinstance(exc, PermissionDeniedException):
        code, title = "forbidden", _("You are not allowed to do this")
    elif status == 413:
        code, title = "payload_too_large", _("The request body is too large")
    elif status == 415:
        code, title = "unsupported_media_type", _("Unsupported media type")
    elif status == 429:
        code, title = "rate_limited", _("Too many requests")
    elif status == 400 and str(exc.detail).startswith(
        ("JSON is malformed", "Input data was truncated")  # msgspec: bad or cut-off JSON
    ):
        code, title = "malformed_json", _("The request body could not be read")
        detail = _("Send a valid JSON document.")
    elif 400 <= status < 500:
        code, title = "bad_request", _("The request could not be processed")
        detail = exc.detail if isinstance(exc.detail, str) else None
    else:
        logger.error("HTTP %s at %s: %s", status, request.url.path, exc.detail)
        code, title = "internal_error", _("Something went wrong on our side")
    response = problem_response(
        request, Problem(title=title, status=status, code=code, detail=detail, errors=errors)
    )
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def handle_unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    # Never leak a stack trace or SQL: log it, answer a generic problem.
    logger.exception("unhandled error at %s %s", request.method, request.url.path)
    return problem_response(
        request,
        Problem(
            title=_("Something went wrong on our side"),
            status=HTTP_500_INTERNAL_SERVER_ERROR,
            code="internal_error",
        ),
    )


def handle_integrity_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    # A unique or foreign key constraint caught a race the service's own checks missed.
    logger.warning("integrity error at %s %s: %s", request.method, request.url.path, exc)
    return problem_response(
        request,
        Problem(
            title=_("The request conflicts with the current state"),
            status=409,
            code="conflict",
            detail=_("Someone changed the same data at the same moment; reload and try again."),
        ),
    )


def handle_database_unavailable(
    request: Request[Any, Any, Any], exc: DatabaseUnavailable
) -> Response[Problem]:
    logger.warning(
        "database unavailable at %s %s: %r", request.method, request.url.path, exc.__cause__
    )
    if exc.code == "database_busy":
        detail = _("Too many changes at once; try again in a few seconds.")
    else:
        detail = _("Our database is not answering; try again in a few seconds.")
    response = problem_response(
        request,
        Problem(
            title=_("The service is briefly unavailable"),
            status=503,
            code=exc.code,
            detail=detail,
        ),
    )
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    DomainError: handle_domain_error,
    HTTPException: handle_http_exception,
    sqlite3.IntegrityError: handle_integrity_error,
    asyncpg.exceptions.IntegrityConstraintViolationError: handle_integrity_error,
    DatabaseUnavailable: handle_database_unavailable,
    Exception: handle_unexpected_error,
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem responses an endpoint can give."""
    descriptions = {
        400: "Invalid input: the problem names the offending fields",
        401: "Missing or invalid credentials",
        403: "The principal's role does not allow this",
        404: "Not found (or not yours)",
        409: "Conflicts with the current state",
        413: "Request body too large",
        429: "Too many requests: wait for Retry-After seconds",
        503: "The database is briefly unavailable: retry after Retry-After seconds",
    }
    # Any operation can meet a malformed parameter or header (400), a database outage
    # (503); public ones a client address over its budget (429).
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=descriptions.get(status, "Problem"),
            media_type=PROBLEM_MEDIA_TYPE,
        )
        for status in sorted({400, 429, 503, *statuses})
    }


__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "Conflict",
    "DatabaseUnavailable",
    "DomainError",
    "FieldError",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "Problem",
    "Unauthorized",
]
