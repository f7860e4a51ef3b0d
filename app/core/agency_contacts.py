"""Who to contact about a booking an agency made: what the booking domain may ask about
agencies; the partners domain, which keeps the contracts, answers.

Booking sits below partners and imports nothing from it, yet a traveller whose agency
booked for them must be told which agency changes or cancels the booking. The answer is
given when the application is composed (`app.partners.services.answer_agency_contacts`,
called from `app.wiring.wire_domains`): asking before that is a bug, not "no agency".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True, slots=True)
class AgencyContact:
    """An agency as a traveller may reach it (its phone is "" when none was given)."""

    name: str
    email: str
    phone: str


LookUp = Callable[[UUID], Awaitable[AgencyContact | None]]

_answers: dict[str, LookUp] = {}


def answer_agency_contact(answer: LookUp) -> None:
    _answers["agency_contact"] = answer


async def agency_contact(agency_id: UUID) -> AgencyContact | None:
    """The agency's name and contact; None when no such agency exists (any more)."""
    answer = _answers.get("agency_contact")
    if answer is None:
        raise RuntimeError(
            "nothing answers agency_contact: call "
            "app.partners.services.answer_agency_contacts() at startup"
        )
    return await answer(agency_id)
