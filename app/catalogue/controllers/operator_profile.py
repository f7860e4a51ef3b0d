"""The operator's own profile."""

from __future__ import annotations

from litestar import get, patch
from litestar.di import NamedDependency
from litestar.params import JSONBody

from app.accounts import operators
from app.accounts.schemas import OperatorOut, OperatorPrincipal, OperatorUpdate
from app.catalogue.controllers.common import _OperatorController
from app.core.errors import problem_responses


class OperatorProfileController(_OperatorController):
    path = "/api/v1/operator/profile"
    tags = ["Operator: profile"]

    @get("/", summary="My operator", responses=problem_responses(401, 403))
    async def get_profile(self, operator: NamedDependency[OperatorPrincipal]) -> OperatorOut:
        return await operators.get_own_operator(operator)

    @patch("/", summary="Update my operator", responses=problem_responses(400, 401, 403))
    async def update_profile(
        self, operator: NamedDependency[OperatorPrincipal], data: JSONBody[OperatorUpdate]
    ) -> OperatorOut:
        return await operators.update_own_operator(operator, data)
