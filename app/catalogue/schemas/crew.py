"""A departure's crew roster: who travels with the run, what they do, where to find them."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec

from app.catalogue.schemas.common import Input
from app.catalogue.tables import CrewRole
from app.core.schemas import Phone

CrewName = Annotated[str, msgspec.Meta(min_length=1, max_length=120, examples=["李建华"])]
Car = Annotated[int, msgspec.Meta(ge=1, le=99, description="The train car they travel in")]
CoachText = Annotated[
    str,
    msgspec.Meta(
        max_length=60,
        description="The coach they ride, as written (e.g. its plate or number)",
        examples=["新A·12345"],
    ),
]


class CrewMemberIn(Input, kw_only=True):
    name: CrewName
    role: CrewRole
    phone: Phone
    car: Car | None = None
    coach: CoachText = ""


class CrewIn(Input, kw_only=True):
    """The whole roster; members in the order given."""

    members: Annotated[list[CrewMemberIn], msgspec.Meta(max_length=60)]


class CrewMemberOut(msgspec.Struct, kw_only=True):
    name: str
    role: CrewRole
    phone: str
    car: int | None
    coach: str


class CrewOut(msgspec.Struct, kw_only=True):
    departure_id: UUID
    members: list[CrewMemberOut]
