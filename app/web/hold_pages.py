"""The tourist's booking form: choose passengers and seats for a departure and hold them,
or join its waiting list when it is sold out.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app.booking.schemas import WaitlistIn
from app.booking.services import hold, public_departures, waitlist
from app.core.errors import DomainError
from app.web.booking_forms import (
    _booking_from_form,
    _contact,
    _count_field,
    _fares_by_class,
    _pickups,
    _seat_groups,
)
from app.web.booking_pages import booking_link
from app.web.errors import PAGE_EXCEPTION_HANDLERS
from app.web.forms import FormProblems, convert, small_number, text
from app.web.templates import page_context


class HoldPagesController(Controller):
    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS

    async def _booking_form(
        self,
        request: Request[Any, Any, Any],
        departure_id: UUID,
        *,
        problems: FormProblems | None = None,
        form: FormMultiDict | None = None,
        status_code: int = 200,
    ) -> Template:
        departure = await public_departures.get_departure(departure_id)
        seat_map = await public_departures.get_seat_map(departure_id)
        sold_out = departure.on_sale and departure.seats_left == 0
        return Template(
            "book.html",
            context={
                **page_context(request, f"/departures/{departure_id}/book"),
                "departure": departure,
                "fares_by_class": _fares_by_class(departure),
                "classes": {c.seat_class: c for c in departure.classes},
                "seat_groups": _seat_groups(seat_map.seats),
                "pickups": _pickups(departure),
                "sold_out": sold_out,
                "count_field": _count_field,
                "problems": problems or FormProblems(),
                "form": form or FormMultiDict(),
                "picked": set(form.getall("seat", [])) if form else set(),
            },
            status_code=status_code,
        )

    @get("/departures/{departure_id:uuid}/book")
    async def booking_form(
        self, request: Request[Any, Any, Any], departure_id: FromPath[UUID]
    ) -> Template:
        return await self._booking_form(request, departure_id)

    @post("/departures/{departure_id:uuid}/book", status_code=303)
    async def hold(
        self, request: Request[Any, Any, Any], departure_id: FromPath[UUID]
    ) -> Redirect | Template:
        form = await request.form()
        departure = await public_departures.get_departure(departure_id)
        seat_map = await public_departures.get_seat_map(departure_id)
        data, problems = _booking_from_form(departure, seat_map.seats, form)
        if data is None:
            return await self._booking_form(
                request, departure_id, problems=problems, form=form, status_code=400
            )
        try:
            created = await hold.create_booking(data)
        except DomainError as exc:
            problems = FormProblems.of(exc)
            # The API names `seats[0].label`; on the page that is the seat map.
            problems.fields = {
                ("seat" if name.startswith("seats") else name): message
                for name, message in problems.fields.items()
            }
            return await self._booking_form(
                request, departure_id, problems=problems, form=form, status_code=exc.status_code
            )
        return Redirect(
            booking_link(created.booking.reference, created.access_token), status_code=303
        )

    @post("/departures/{departure_id:uuid}/waitlist", status_code=201)
    async def join_waitlist(
        self, request: Request[Any, Any, Any], departure_id: FromPath[UUID]
    ) -> Template:
        form = await request.form()
        problems = FormProblems()
        contact = _contact(form, problems)
        party = text(form, "party_size")
        data = None
        if not problems:
            data = convert(
                {
                    "seat_class": text(form, "seat_class"),
                    # Text that is no small number stays text: its error names the field.
                    "party_size": party if (size := small_number(party)) is None else size,
                    "contact": contact,
                },
                WaitlistIn,
                problems,
            )
        if data is None:
            return await self._booking_form(
                request, departure_id, problems=problems, form=form, status_code=400
            )
        try:
            entry = await waitlist.join(departure_id, data)
        except DomainError as exc:
            return await self._booking_form(
                request, departure_id, problems=FormProblems.of(exc), form=form,
                status_code=exc.status_code,
            )  # fmt: skip
        departure = await public_departures.get_departure(departure_id)
        return Template(
            "waitlisted.html",
            context={
                **page_context(request, f"/departures/{departure_id}/book"),
                "entry": entry,
                "departure": departure,
            },
            status_code=201,
        )
