"""Who is calling: the staff principal behind `Authorization: Bearer <token>`."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers import BaseRouteHandler

from app.accounts.audit import PRINCIPAL_STATE_KEY
from app.accounts.schemas import OperatorPrincipal, Principal
from app.accounts.services import as_operator_principal, principal_from_token
from app.core.errors import Unauthorized
from app.core.i18n import _

BEARER_SECURITY: list[dict[str, list[str]]] = [{"BearerToken": []}]


async def provide_principal(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The caller's principal, read once per request (the guards read it first)."""
    state = request.scope.setdefault("state", {})
    known = state.get(PRINCIPAL_STATE_KEY)
    if isinstance(known, Principal):
        return known
    header = request.headers.get("authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            _("Send a staff token as Authorization: Bearer <token>."), code="missing_token"
        )
    principal = await principal_from_token(token.strip())
    # For the audit log, which records who made each change.
    state[PRINCIPAL_STATE_KEY] = principal
    return principal


async def require_staff(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: a staff token, checked before the request body is read, so that a caller
    without one learns nothing but 401 (not how the body would have been judged)."""
    await provide_principal(connection)


async def require_operator_staff(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: an operator's staff token (401, else 403), before the body is read."""
    as_operator_principal(await provide_principal(connection))


async def provide_operator_principal(principal: NamedDependency[Principal]) -> OperatorPrincipal:
    return as_operator_principal(principal)


STAFF_GUARDS = [require_staff]
OPERATOR_GUARDS = [require_operator_staff]
STAFF_DEPENDENCIES = {"principal": Provide(provide_principal)}
OPERATOR_DEPENDENCIES = {
    "principal": Provide(provide_principal),
    "operator": Provide(provide_operator_principal),
}
