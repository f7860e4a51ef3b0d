"""What the catalogue's controllers share: the operator base and the local date filters."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from litestar import Controller
from litestar.params import QueryParameter

from app.accounts.dependencies import BEARER_SECURITY, OPERATOR_DEPENDENCIES, OPERATOR_GUARDS

DateFrom = Annotated[
    date | None, QueryParameter(name="from", description="First local date, inclusive (YYYY-MM-DD)")
]
DateTo = Annotated[
    date | None, QueryParameter(name="to", description="Last local date, inclusive (YYYY-MM-DD)")
]


class _OperatorController(Controller):
    dependencies = OPERATOR_DEPENDENCIES
    guards = OPERATOR_GUARDS
    security = BEARER_SECURITY
