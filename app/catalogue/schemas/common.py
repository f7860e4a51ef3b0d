"""Types every catalogue structure shares: themes, seat classes and labels, the input base."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import msgspec


class Theme(StrEnum):
    sightseeing = "sightseeing"
    picking = "picking"
    flower_field = "flower_field"
    rural = "rural"
    family = "family"
    culture = "culture"
    nature = "nature"
    food = "food"


class SeatPosition(StrEnum):
    # Upper-case names: `lower` and `upper` would hide the str methods of the same name.
    LOWER = "lower"
    MIDDLE = "middle"
    UPPER = "upper"
    WINDOW = "window"
    AISLE = "aisle"


class BlockReason(StrEnum):
    crew = "crew"
    guide = "guide"
    medical = "medical"
    steward = "steward"
    maintenance = "maintenance"
    other = "other"


SeatClass = Annotated[
    str,
    msgspec.Meta(
        pattern="^[a-z][a-z_]{1,31}$",
        examples=["soft_sleeper"],
        description="e.g. soft_sleeper, hard_sleeper, standard, front, accessible",
    ),
]
SeatLabel = Annotated[
    str, msgspec.Meta(pattern="^[A-Z0-9][A-Z0-9-]{0,15}$", examples=["07-12L", "3C"])
]
Month = Annotated[int, msgspec.Meta(ge=1, le=12)]
ReminderHours = Annotated[
    list[Annotated[int, msgspec.Meta(ge=1, le=336)]],
    msgspec.Meta(max_length=5, description="Hours before departure to remind passengers"),
]


class Input(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are an error."""
