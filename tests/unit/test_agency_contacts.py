"""The booking domain's question about agencies is answered by the partners domain when
the app is composed; asking before that is a bug that says so (never "no agency")."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest

from app.core import agency_contacts
from app.partners import services


@pytest.fixture
def no_answers() -> Iterator[None]:
    saved = dict(agency_contacts._answers)
    agency_contacts._answers.clear()
    try:
        yield
    finally:
        agency_contacts._answers.clear()
        agency_contacts._answers.update(saved)


@pytest.mark.usefixtures("no_answers")
async def test_asking_before_partners_answer_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="answer_agency_contacts"):
        await agency_contacts.agency_contact(uuid4())


@pytest.mark.usefixtures("no_answers")
async def test_the_registered_answer_is_asked() -> None:
    asked: list[UUID] = []
    contact = agency_contacts.AgencyContact(name="Silk Road", email="a@example.cn", phone="")

    async def answer(agency_id: UUID) -> agency_contacts.AgencyContact:
        asked.append(agency_id)
        return contact

    agency_contacts.answer_agency_contact(answer)
    agency_id = uuid4()
    assert await agency_contacts.agency_contact(agency_id) == contact
    assert asked == [agency_id]


@pytest.mark.usefixtures("no_answers")
def test_partners_answer_with_their_agencies() -> None:
    services.answer_agency_contacts()
    assert agency_contacts._answers["agency_contact"] is services.agency_contact
