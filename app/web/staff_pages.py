"""The operator's pages behind staff login: the departures board with the load of each
class, a departure's page (check-in by reference, advisory, cancelling the run) and its
manifest, print-friendly or as CSV.

The staff token of the API lives in an HttpOnly, SameSite=Strict cookie scoped to /staff;
every form also carries a token derived from it (HMAC with the secret key), so another site
can neither read nor forge a staff action. Changes go through the same services as the
operator API and land in the audit log the same way.
"""

from __future__ import annotations

import hmac
import re
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode
from uuid import UUID, uuid4

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie, FormMultiDict
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from app.accounts.audit import PRINCIPAL_STATE_KEY
from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import as_operator_principal, login, principal_from_token
from app.booking.controllers import manifest_csv_response
from app.booking.schemas import CheckInIn
from app.booking.services import operations
from app.catalogue.schemas.crew import CrewIn, CrewMemberOut
from app.catalogue.services import crew
from app.catalogue.services.departures import get_departure
from app.catalogue.services.routes import route_out
from app.catalogue.tables import CrewRole
from app.core.errors import DomainError, Forbidden, Unauthorized
from app.core.http_security import client_ip
from app.core.i18n import N_, _, localize, ngettext
from app.core.links import lang_code
from app.core.pagination import PageParams
from app.core.security import staff_form_token
from app.core.settings import Settings
from app.notifications.schemas import AdvisoryIn
from app.notifications.services.advisories import post_advisory
from app.web.errors import PAGE_EXCEPTION_HANDLERS
from app.web.forms import FormProblems, convert, field_id, small_number, text
from app.web.templates import page_context

STAFF_COOKIE = "tourline_staff"
BOARD_PAGE_SIZE = 25
# Empty rows under the roster's members, to add people (more after saving).
CREW_BLANK_ROWS = 3
CREW_FIELDS = ("name", "role", "phone", "car", "coach")
# The kinds of advisory and their names (as AdvisoryIn has them).
ADVISORY_KINDS = (
    ("weather", N_("Weather")),
    ("schedule", N_("Schedule change")),
    ("heat", N_("Heat day")),
    ("other", N_("Other")),
)


def _page_of_form(request: Request[Any, Any, Any]) -> str:
    """The page a staff form is on: /staff/departures/{id} for .../{id}/check-in."""
    return request.url.path.rsplit("/", 1)[0]


def _login_redirect(request: Request[Any, Any, Any]) -> Redirect:
    if request.method == "GET":
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        # A form sent after the session ran out: back to the page the form was on.
        back = _page_of_form(request)
    return Redirect(f"/staff/login?lang={lang_code()}&next={quote(back)}", status_code=303)


async def _staff(request: Request[Any, Any, Any]) -> tuple[OperatorPrincipal, str] | None:
    """The operator staff behind the cookie, noted for the audit log; None if not logged in."""
    token = request.cookies.get(STAFF_COOKIE, "")
    if not token:
        return None
    try:
        principal = await principal_from_token(token)
        operator_principal = as_operator_principal(principal)
    except (Unauthorized, Forbidden):
        return None
    request.scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = principal
    return operator_principal, token


def _safe_next(target: str) -> str:
    """Only our own staff pages: never an open redirect to another site."""
    return target if target.startswith("/staff") and not target.startswith("//") else "/staff"


async def staff_form_action(
    request: Request[Any, Any, Any],
) -> tuple[OperatorPrincipal, str, FormMultiDict] | Response[Any]:
    """The staff and form of a POST, or the answer when either is missing or forged."""
    staff = await _staff(request)
    if staff is None:
        return _login_redirect(request)
    principal, token = staff
    form = await request.form()
    if not hmac.compare_digest(text(form, "csrf"), staff_form_token(token)):
        return Template(
            "staff/forbidden.html",
            context={
                **page_context(request, _page_of_form(request)),
                "message": _("This form has expired; reload the page and try again."),
            },
            status_code=403,
        )
    return principal, token, form


async def staff_page_access(
    request: Request[Any, Any, Any],
) -> tuple[OperatorPrincipal, str] | Response[Any]:
    """The staff behind a page's cookie, or the way to the login page."""
    staff = await _staff(request)
    return _login_redirect(request) if staff is None else staff


class StaffPagesController(Controller):
    path = "/staff"
    include_in_schema = False
    exception_handlers = PAGE_EXCEPTION_HANDLERS

    # ------------------------------------------------------------ login

    def _login_page(
        self,
        request: Request[Any, Any, Any],
        problems: FormProblems | None = None,
        email: str = "",
        next_page: str = "/staff",
        status_code: int = 200,
    ) -> Template:
        return Template(
            "staff/login.html",
            context={
                **page_context(request, f"/staff/login?{urlencode({'next': next_page})}"),
                "problems": problems or FormProblems(),
                "email": email,
                "next": next_page,
            },
            status_code=status_code,
        )

    @get("/login")
    async def login_form(
        self,
        request: Request[Any, Any, Any],
        next_page: Annotated[str, QueryParameter(name="next", max_length=500)] = "/staff",
    ) -> Template:
        return self._login_page(request, next_page=_safe_next(next_page))

    @post("/login", status_code=303)
    async def log_in(
        self, request: Request[Any, Any, Any], settings: NamedDependency[Settings]
    ) -> Response[Any]:
        form = await request.form()
        email, password = text(form, "email"), str(form.get("password") or "")
        next_page = _safe_next(text(form, "next"))
        problems = FormProblems()
        if not email:
            problems.add("email", _("This field is required."))
        if not password:
            problems.add("password", _("This field is required."))
        if problems:
            return self._login_page(request, problems, email, next_page, 400)
        try:
            issued = await login(email, password, client_ip(request), settings)
            principal = await principal_from_token(issued.access_token)
            as_operator_principal(principal)
        except DomainError as exc:
            return self._login_page(
                request, FormProblems.of(exc), email, next_page, exc.status_code
            )
        target = next_page
        if "lang=" not in next_page:
            target += ("&" if "?" in next_page else "?") + f"lang={lang_code()}"
        return Redirect(
            target,
            status_code=303,
            cookies=[
                Cookie(
                    key=STAFF_COOKIE,
                    value=issued.access_token,
                    max_age=issued.expires_in,
                    path="/staff",
                    httponly=True,
                    secure=settings.is_production,
                    samesite="strict",
                )
            ],
        )

    @post("/logout", status_code=303)
    async def log_out(self, request: Request[Any, Any, Any]) -> Redirect:
        return Redirect(
            f"/staff/login?lang={lang_code()}",
            status_code=303,
            cookies=[Cookie(key=STAFF_COOKIE, value="", max_age=0, path="/staff")],
        )

    # ------------------------------------------------------------ the board

    @get("/")
    async def board(
        self,
        request: Request[Any, Any, Any],
        page: Annotated[int, QueryParameter(name="page", ge=1, le=10_000)] = 1,
        date_from: Annotated[date | None, QueryParameter(name="from")] = None,
    ) -> Response[Any]:
        staff = await _staff(request)
        if staff is None:
            return _login_redirect(request)
        principal, token = staff
        board = await operations.departure_board(
            principal, PageParams(page=page, page_size=BOARD_PAGE_SIZE), date_from
        )
        return Template(
            "staff/board.html",
            context={
                **page_context(request),
                "board": board,
                "csrf": staff_form_token(token),
                "date_from": date_from.isoformat() if date_from else "",
                "has_more": board.page * board.page_size < board.total,
            },
        )

    # ------------------------------------------------------------ a departure

    async def _departure_page(
        self,
        request: Request[Any, Any, Any],
        principal: OperatorPrincipal,
        token: str,
        departure_id: UUID,
        *,
        problems: FormProblems | None = None,
        done: str = "",
        form: FormMultiDict | None = None,
        status_code: int = 200,
    ) -> Response[Any]:
        departure = await get_departure(principal, departure_id)
        route = await route_out(departure.route_id)
        sales = await operations.sales_overview(principal, departure_id)
        manifest = await operations.manifest(principal, departure_id)
        return Template(
            "staff/departure.html",
            context={
                **page_context(request, f"/staff/departures/{departure_id}"),
                "departure": departure,
                "route_name": localize(route.name),
                "sales": sales,
                "manifest": manifest,
                "csrf": staff_form_token(token),
                "problems": problems or FormProblems(),
                "done": done,
                "form": form or FormMultiDict(),
                "advisory_kinds": ADVISORY_KINDS,
                "form_key": uuid4(),
            },
            status_code=status_code,
        )

    @get("/departures/{departure_id:uuid}")
    async def departure(
        self, request: Request[Any, Any, Any], departure_id: FromPath[UUID]
    ) -> Response[Any]:
        staff = await _staff(request)
        if staff is None:
            return _login_redirect(request)
        return await self._departure_page(request, *staff, departure_id)

    @get("/departures/{departure_id:uuid}/manifest")
    async def manifest(
        self,
        request: Request[Any, Any, Any],
        departure_id: FromPath[UUID],
        format: Annotated[Literal["html", "csv"], QueryParameter(name="format")] = "html",
        sort: Annotated[Literal["seat", "pickup"], QueryParameter(name="sort")] = "seat",
    ) -> Response[Any]:
        staff = await _staff(request)
        if staff is None:
            return _login_redirect(request)
        principal, token = staff
        data = await operations.manifest(principal, departure_id, sort)
        departure = await get_departure(principal, departure_id)
        route = await route_out(departure.route_id)
        if format == "csv":
            return manifest_csv_response(data)
        return Template(
            "staff/manifest.html",
            context={
                **page_context(request),
                "manifest": data,
                "departure": departure,
                "route_name": localize(route.name),
                "sort": sort,
                "csrf": staff_form_token(token),
            },
        )

    # ------------------------------------------------------------ the crew

    async def _crew_page(
        self,
        request: Request[Any, Any, Any],
        principal: OperatorPrincipal,
        token: str,
        departure_id: UUID,
        *,
        problems: FormProblems | None = None,
        done: str = "",
        rows: list[dict[str, str]] | None = None,
        status_code: int = 200,
    ) -> Response[Any]:
        departure = await get_departure(principal, departure_id)
        route = await route_out(departure.route_id)
        roster = await crew.get_crew(principal, departure_id)
        if rows is None:
            rows = [_crew_row(member) for member in roster.members]
            # A new row most often adds a guide.
            blank = {**dict.fromkeys(CREW_FIELDS, ""), "role": CrewRole.guide.value}
            rows += [blank] * CREW_BLANK_ROWS
        return Template(
            "staff/crew.html",
            context={
                **page_context(request, f"/staff/departures/{departure_id}/crew"),
                "departure": departure,
                "route_name": localize(route.name),
                "crew": roster.members,
                "rows": rows,
                "roles": list(CrewRole),
                "can_edit": principal.can_edit,
                "csrf": staff_form_token(token),
                "problems": problems or FormProblems(),
                "done": done,
            },
            status_code=status_code,
        )

    @get("/departures/{departure_id:uuid}/crew")
    async def crew_roster(
        self, request: Request[Any, Any, Any], departure_id: FromPath[UUID]
    ) -> Response[Any]:
        staff = await _staff(request)
        if staff is None:
            return _login_redirect(request)
        return await self._crew_page(request, *staff, departure_id)

    @post("/departures/{departure_id:uuid}/crew", status_code=200)
    async def save_crew(
        self, request: Request[Any, Any, Any], departure_id: FromPath[UUID]
    ) -> Response[Any]:
        action = await self._form_action(request)
        if isinstance(action, Response):
            return action
        principal, token, form = action
        rows = _crew_rows(form)
        # The roster's members are the rows kept; a problem with member k is shown on the
        # row it came from.
        kept = [
            index
            for index, row in enumerate(rows)
            if not row["remove"] and any(row[name] for name in ("name", "phone", "car", "coach"))
        ]
        members = [
            {
                "name": rows[index]["name"],
                "role": rows[index]["role"],
                "phone": rows[index]["phone"],
                "car": _car(rows[index]["car"]),
                "coach": rows[index]["coach"],
            }
            for index in kept
        ]
        problems = FormProblems()
        data = convert({"members": members}, CrewIn, problems)
        saved, status_code = None, 400
        if data is not None:
            try:
                saved = await crew.replace_crew(principal, departure_id, data)
            except DomainError as exc:
                problems, status_code = FormProblems.of(exc), exc.status_code
        if saved is None:
            return await self._crew_page(
                request, principal, token, departure_id, rows=rows,
                problems=_on_form_rows(problems, kept), status_code=status_code,
            )  # fmt: skip
        done = ngettext(
            "The crew roster is saved: {count} member.",
            "The crew roster is saved: {count} members.",
            len(saved.members),
        ).format(count=len(saved.members))
        return await self._crew_page(request, principal, token, departure_id, done=done)

    async def _form_action(
        self, request: Request[Any, Any, Any]
    ) -> tuple[OperatorPrincipal, str, FormMultiDict] | Response[Any]:
        return await staff_form_action(request)

    @post("/departures/{departure_id:uuid}/check-in", status_code=200)
    async def check_in(
        self, request: Request[Any, Any, Any], departure_id: FromPath[UUID]
    ) -> Response[Any]:
        action = await self._form_action(request)
        if isinstance(action, Response):
            return action
        principal, token, form = action
        problems = FormProblems()
        wanted: dict[str, Any] = {"reference": text(form, "reference").upper()}
        seats = [label for label in form.getall("seat", []) if isinstance(label, str)]
        if seats:
            wanted["seat_labels"] = seats
        data = convert(wanted, CheckInIn, problems)
        if data is None:
            return await self._departure_page(
                request, principal, token, departure_id, problems=problems, form=form,
                status_code=400,
            )  # fmt: skip
        try:
            result = await operations.check_in(principal, departure_id, data)
        except DomainError as exc:
            # The reference is what was wrong: the message goes beside it.
            problems = FormProblems(fields={"reference": exc.detail or exc.title()})
            return await self._departure_page(
                request, principal, token, departure_id, problems=problems, form=form,
                status_code=exc.status_code,
            )  # fmt: skip
        if result.checked_in:
            done = _("{reference}: checked in {seats}.").format(
                reference=result.reference, seats=", ".join(result.checked_in)
            )
        else:
            done = _("{reference} was already checked in ({seats}).").format(
                reference=result.reference, seats=", ".join(result.already_checked_in)
            )
        if text(form, "from") == "manifest":
            # Checked in from a row of the manifest: back to the list, at the next passenger.
            anchor = f"#seat-{field_id(seats[0])}" if seats else ""
            manifest_page = f"/staff/departures/{departure_id}/manifest?lang={lang_code()}"
            return Redirect(manifest_page + anchor, status_code=303)
        return await self._departure_page(request, principal, token, departure_id, done=done)

    @post("/departures/{departure_id:uuid}/advisory", status_code=200)
    async def advisory(
        self, request: Request[Any, Any, Any], departure_id: FromPath[UUID]
    ) -> Response[Any]:
        action = await self._form_action(request)
        if isinstance(action, Response):
            return action
        principal, token, form = action
        problems = FormProblems()
        message = {
            locale: text(form, f"message.{locale}")
            for locale in ("zh_Hans", "en")
            if text(form, f"message.{locale}")
        }
        if not message:
            problems.add("message.zh_Hans", _("Write the message in at least one language."))
        temperature = text(form, "max_temperature_c")
        data = None
        if not problems:
            data = convert(
                {
                    "kind": text(form, "kind"),
                    "message": message,
                    "max_temperature_c": _number(temperature),
                },
                AdvisoryIn,
                problems,
            )
        if data is None:
            return await self._departure_page(
                request, principal, token, departure_id, problems=problems, form=form,
                status_code=400,
            )  # fmt: skip
        try:
            _advisory_id, recipients = await post_advisory(
                principal, departure_id, data, _form_key(form)
            )
        except DomainError as exc:
            return await self._departure_page(
                request, principal, token, departure_id, problems=FormProblems.of(exc),
                form=form, status_code=exc.status_code,
            )  # fmt: skip
        done = _("The advisory goes to {count} booking contacts.").format(count=recipients)
        return await self._departure_page(request, principal, token, departure_id, done=done)

    @post("/departures/{departure_id:uuid}/cancel", status_code=200)
    async def cancel(
        self, request: Request[Any, Any, Any], departure_id: FromPath[UUID]
    ) -> Response[Any]:
        action = await self._form_action(request)
        if isinstance(action, Response):
            return action
        principal, token, form = action
        if text(form, "confirm") != "yes":
            problems = FormProblems()
            problems.add("confirm", _("Tick the box to confirm cancelling the departure."))
            return await self._departure_page(
                request, principal, token, departure_id, problems=problems, status_code=400
            )
        try:
            result = await operations.cancel_departure(principal, departure_id)
        except DomainError as exc:
            return await self._departure_page(
                request, principal, token, departure_id, problems=FormProblems.of(exc),
                status_code=exc.status_code,
            )  # fmt: skip
        done = _(
            "The departure is cancelled: {count} bookings cancelled, {amount} to refund."
        ).format(count=result.bookings_cancelled, amount=result.refunds_total.formatted)
        return await self._departure_page(request, principal, token, departure_id, done=done)


def _crew_row(member: CrewMemberOut) -> dict[str, str]:
    return {
        "name": member.name,
        "role": member.role.value,
        "phone": member.phone,
        "car": str(member.car) if member.car is not None else "",
        "coach": member.coach,
    }


def _crew_rows(form: FormMultiDict) -> list[dict[str, str]]:
    """The roster's rows as sent, in order: `members[i].name` and so on, i from 0."""
    rows: list[dict[str, str]] = []
    while f"members[{len(rows)}].name" in form and len(rows) < 200:
        index = len(rows)
        row = {name: text(form, f"members[{index}].{name}") for name in CREW_FIELDS}
        row["remove"] = "yes" if text(form, f"members[{index}].remove") == "yes" else ""
        rows.append(row)
    return rows


def _car(raw: str) -> int | str | None:
    """A car number typed in the form, as the API's JSON would carry it (text stays text,
    so its error names the field)."""
    if not raw:
        return None
    number = small_number(raw)
    return number if number is not None else raw


def _on_form_rows(problems: FormProblems, kept: list[int]) -> FormProblems:
    """`members[k]...` problems renamed to the form row member k came from."""
    moved = FormProblems(summary=problems.summary)
    for name, message in problems.fields.items():
        found = re.match(r"members\[(\d+)\](.*)", name)
        if found and int(found.group(1)) < len(kept):
            name = f"members[{kept[int(found.group(1))]}]{found.group(2)}"
        moved.add(name, message)
    return moved


def _form_key(form: FormMultiDict) -> UUID | None:
    """The key the form was drawn with: sent twice (a double click, a reload), it is the
    same advisory."""
    try:
        return UUID(text(form, "form_key"))
    except ValueError:
        return None


def _number(raw: str) -> float | str | None:
    """A number typed in a form, as the API's JSON would carry it (text stays text, so its
    error names the field)."""
    if not raw:
        return None
    try:
        return float(raw.replace(",", "."))
    except ValueError:
        return raw
