"""Who is calling: the staff principal behind `Authorization: Bearer <token>`."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide

from app.accounts.audit import PRINCIPAL_STATE_KEY
from app.accounts.schemas import OperatorPrincipal, Principal
from app.accounts.services import as_operator_principal, principal_from_token
from app.core.errors import Unauthorized
from app.core.i18n import _

BEARER_SECURITY: list[dict[str, list[str]]] = [{"BearerToken": []}]


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _sep, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            _("Send a staff token as Authorization: Bearer <token>."), code="missing_token"
        )
    principal = await principal_from_token(token.strip())
    # For the audit log, which records who made each change.
    request.scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = principal
    return principal


async def provide_operator_principal(principal: NamedDependency[Principal]) -> OperatorPrincipal:
    return as_operator_principal(principal)


STAFF_DEPENDENCIES = {"principal": Provide(provide_principal)}
OPERATOR_DEPENDENCIES = {
    "principal": Provide(provide_principal),
    "operator": Provide(provide_operator_principal),
}
