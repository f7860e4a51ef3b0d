"""Operators' routes (themed lines), their itineraries and seasonal offers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

import msgspec
from piccolo.custom_types import Combinable

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.schemas import (
    ItineraryDayOut,
    ItineraryIn,
    ItineraryOut,
    ItineraryStopOut,
    PolicyTier,
    PolicyTierOut,
    RouteCreate,
    RouteOut,
    RouteUpdate,
    SeasonalOfferIn,
    SeasonalOfferOut,
    SeasonalOfferUpdate,
)
from app.catalogue.services.common import (
    Row,
    as_dict,
    as_list,
    format_clock_time,
    owned_route,
    parse_clock_time,
    text_dict,
)
from app.catalogue.tables import (
    Departure,
    ItineraryDay,
    ItineraryStop,
    Route,
    RouteStatus,
    RouteTheme,
    SeasonalOffer,
)
from app.core import clock
from app.core.database import write_transaction
from app.core.errors import Conflict, FieldError, InvalidInput, NotFound
from app.core.i18n import _
from app.core.labels import status_label
from app.core.pagination import Page, PageParams, fetch_page, page_of

# Refund tiers used when an operator gives none: full refund up to 3 days before, half up to
# one day before, nothing after.
DEFAULT_CANCELLATION_POLICY: tuple[tuple[int, int], ...] = ((72, 100), (24, 50), (0, 0))


def search_text(*texts: Mapping[Any, str] | None, extra: Iterable[str] = ()) -> str:
    parts = [value for text in texts if text for value in text.values()]
    parts.extend(extra)
    return " ".join(parts).lower()


def _policy(tiers: list[PolicyTier] | None) -> list[dict[str, int]]:
    if tiers is None:
        return [{"hours_before": h, "refund_percent": p} for h, p in DEFAULT_CANCELLATION_POLICY]
    hours = [tier.hours_before for tier in tiers]
    if len(set(hours)) != len(hours):
        raise InvalidInput("cancellation_policy", _("Each tier needs a different hours_before."))
    ordered = sorted(tiers, key=lambda tier: -tier.hours_before)
    percents = [tier.refund_percent for tier in ordered]
    if percents != sorted(percents, reverse=True):
        raise InvalidInput(
            "cancellation_policy",
            _("Refunds cannot grow as departure gets closer."),
        )
    return [{"hours_before": t.hours_before, "refund_percent": t.refund_percent} for t in ordered]


def _reminder_hours(hours: list[int]) -> list[int]:
    if len(set(hours)) != len(hours):
        raise InvalidInput("reminder_hours", _("Each reminder time may appear once."))
    return sorted(hours, reverse=True)


async def themes_by_route(route_ids: list[UUID]) -> dict[UUID, list[str]]:
    themes: dict[UUID, list[str]] = {route_id: [] for route_id in route_ids}
    if not route_ids:
        return themes
    rows = (
        await RouteTheme.select(RouteTheme.route, RouteTheme.theme)
        .where(RouteTheme.route.is_in(route_ids))
        .order_by(RouteTheme.theme)
        .run()
    )
    for row in rows:
        themes[row["route"]].append(row["theme"])
    return themes


def _route_out(row: Row, themes: list[str]) -> RouteOut:
    return RouteOut(
        id=row["id"],
        slug=row["slug"],
        kind=row["kind"],
        status=row["status"],
        themes=themes,
        name=as_dict(row["name"]) or {},
        description=as_dict(row["description"]) or {},
        duration_days=row["duration_days"],
        meeting_point=as_dict(row["meeting_point"]),
        cancellation_policy=[PolicyTierOut(**tier) for tier in as_list(row["cancellation_policy"])],
        reminder_hours=as_list(row["reminder_hours"]),
        what_to_bring=as_dict(row["what_to_bring"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def route_out(route_id: UUID) -> RouteOut:
    row = await Route.select().where(Route.id == route_id).first().output(load_json=True).run()
    if row is None:
        raise NotFound(_("Route not found."), code="route_not_found")
    themes = await themes_by_route([route_id])
    return _route_out(row, themes[route_id])


async def _slug_taken(slug: str, except_id: UUID | None = None) -> bool:
    query = Route.exists().where(Route.slug == slug)
    if except_id is not None:
        query = query.where(Route.id != except_id)
    return bool(await query.run())


async def _replace_themes(route_id: UUID, themes: Iterable[str]) -> None:
    await RouteTheme.delete().where(RouteTheme.route == route_id).run()
    unique = sorted(set(themes))
    if unique:
        await RouteTheme.insert(*[RouteTheme(route=route_id, theme=t) for t in unique]).run()


async def create_route(principal: OperatorPrincipal, data: RouteCreate) -> RouteOut:
    require_operator_admin(principal)
    policy = _policy(data.cancellation_policy)
    async with write_transaction():
        if await _slug_taken(data.slug):
            raise Conflict(
                _("Another route already uses this slug."),
                code="slug_taken",
                errors=[FieldError(field="slug", message=_("Already in use."))],
            )
        route = Route(
            operator=principal.operator_id,
            slug=data.slug,
            kind=data.kind.value,
            name=dict(data.name),
            description=dict(data.description),
            duration_days=data.duration_days,
            meeting_point=text_dict(data.meeting_point),
            cancellation_policy=policy,
            reminder_hours=_reminder_hours(data.reminder_hours),
            what_to_bring=text_dict(data.what_to_bring),
            status=RouteStatus.draft.value,
            search_text=search_text(data.name, data.description, extra=[data.slug]),
        )
        await route.save().run()
        await _replace_themes(route.id, (theme.value for theme in data.themes))
    return await route_out(route.id)


async def list_routes(
    principal: OperatorPrincipal, params: PageParams, status: RouteStatus | None = None
) -> Page[RouteOut]:
    where: Combinable = Route.operator == principal.operator_id
    if status is not None:
        where = where & (Route.status == status.value)
    rows, total = await fetch_page(
        Route, where, params, [(Route.created_at, False), (Route.id, True)], load_json=True
    )
    themes = await themes_by_route([row["id"] for row in rows])
    return page_of([_route_out(row, themes[row["id"]]) for row in rows], params, total)


async def get_route(principal: OperatorPrincipal, route_id: UUID) -> RouteOut:
    await owned_route(principal, route_id)
    return await route_out(route_id)


async def update_route(principal: OperatorPrincipal, route_id: UUID, data: RouteUpdate) -> RouteOut:
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_route(principal, route_id)
        if row["status"] == RouteStatus.archived:
            raise Conflict(_("An archived route cannot be changed."), code="route_archived")
        values: dict[Any, Any] = {Route.updated_at: clock.now()}
        if data.slug is not msgspec.UNSET and data.slug != row["slug"]:
            if row["status"] == RouteStatus.published:
                raise Conflict(
                    _("Unpublish the route before changing its slug: links to it would break."),
                    code="route_published",
                )
            if await _slug_taken(data.slug, except_id=route_id):
                raise Conflict(
                    _("Another route already uses this slug."),
                    code="slug_taken",
                    errors=[FieldError(field="slug", message=_("Already in use."))],
                )
            values[Route.slug] = data.slug
        if data.name is not msgspec.UNSET:
            values[Route.name] = dict(data.name)
        if data.description is not msgspec.UNSET:
            values[Route.description] = dict(data.description)
        if data.duration_days is not msgspec.UNSET:
            last_day = await _last_itinerary_day(route_id)
            if last_day > data.duration_days:
                raise InvalidInput(
                    "duration_days",
                    _("The itinerary has day {day}; shorten the itinerary first.").format(
                        day=last_day
                    ),
                )
            values[Route.duration_days] = data.duration_days
        if data.meeting_point is not msgspec.UNSET:
            values[Route.meeting_point] = text_dict(data.meeting_point)
        if data.cancellation_policy is not msgspec.UNSET:
            values[Route.cancellation_policy] = _policy(data.cancellation_policy)
        if data.what_to_bring is not msgspec.UNSET:
            values[Route.what_to_bring] = text_dict(data.what_to_bring)
        if data.reminder_hours is not msgspec.UNSET:
            values[Route.reminder_hours] = _reminder_hours(data.reminder_hours)
        name = values.get(Route.name, as_dict(row["name"]))
        description = values.get(Route.description, as_dict(row["description"]))
        slug = str(values.get(Route.slug, row["slug"]))
        values[Route.search_text] = search_text(name, description, extra=[slug])
        await Route.update(values).where(Route.id == route_id).run()
        if data.themes is not msgspec.UNSET:
            await _replace_themes(route_id, (theme.value for theme in data.themes))
    return await route_out(route_id)


async def delete_route(principal: OperatorPrincipal, route_id: UUID) -> None:
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_route(principal, route_id)
        if row["status"] != RouteStatus.draft:
            raise Conflict(
                _("Only a draft route can be deleted; archive it instead."), code="route_not_draft"
            )
        if await Departure.exists().where(Departure.route == route_id).run():
            raise Conflict(
                _("The route has departures; archive it instead."), code="route_has_departures"
            )
        await Route.delete().where(Route.id == route_id).run()


_ROUTE_TRANSITIONS: dict[RouteStatus, set[RouteStatus]] = {
    RouteStatus.draft: {RouteStatus.published, RouteStatus.archived},
    RouteStatus.published: {RouteStatus.draft, RouteStatus.archived},
    RouteStatus.archived: {RouteStatus.draft},
}


async def change_route_status(
    principal: OperatorPrincipal, route_id: UUID, target: RouteStatus
) -> RouteOut:
    """The one place a route changes status; publishing checks the route is complete."""
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_route(principal, route_id)
        current = RouteStatus(row["status"])
        if target not in _ROUTE_TRANSITIONS[current]:
            raise Conflict(
                _("A {current} route cannot become {target}.").format(
                    current=status_label(current.value), target=status_label(target.value)
                ),
                code="illegal_transition",
            )
        if target == RouteStatus.published:
            problems = []
            if not await ItineraryDay.exists().where(ItineraryDay.route == route_id).run():
                problems.append(FieldError(field="itinerary", message=_("Add an itinerary first.")))
            if problems:
                raise Conflict(
                    _("The route cannot be published yet."),
                    code="route_not_publishable",
                    errors=problems,
                )
        await (
            Route.update({Route.status: target.value, Route.updated_at: clock.now()})
            .where(Route.id == route_id)
            .run()
        )
    return await route_out(route_id)


# ---------------------------------------------------------------- itinerary


async def _last_itinerary_day(route_id: UUID) -> int:
    row = (
        await ItineraryDay.select(ItineraryDay.day_number)
        .where(ItineraryDay.route == route_id)
        .order_by(ItineraryDay.day_number, ascending=False)
        .first()
        .run()
    )
    return int(row["day_number"]) if row else 0


async def itinerary_of(route_id: UUID) -> ItineraryOut:
    days = (
        await ItineraryDay.select()
        .where(ItineraryDay.route == route_id)
        .order_by(ItineraryDay.day_number)
        .output(load_json=True)
        .run()
    )
    stops_by_day: dict[UUID, list[ItineraryStopOut]] = {day["id"]: [] for day in days}
    if days:
        stops = (
            await ItineraryStop.select()
            .where(ItineraryStop.day.is_in(list(stops_by_day)))
            .order_by(ItineraryStop.stop_order)
            .output(load_json=True)
            .run()
        )
        for stop in stops:
            stops_by_day[stop["day"]].append(
                ItineraryStopOut(
                    place=as_dict(stop["place"]) or {},
                    arrive_time=format_clock_time(stop["arrive_time"]),
                    depart_time=format_clock_time(stop["depart_time"]),
                    activities=as_list(stop["activities"]),
                    coach_transfer=stop["coach_transfer"],
                    notes=as_dict(stop["notes"]),
                )
            )
    return ItineraryOut(
        days=[
            ItineraryDayOut(
                day_number=day["day_number"],
                title=as_dict(day["title"]) or {},
                description=as_dict(day["description"]),
                night_on_train=day["night_on_train"],
                stops=stops_by_day[day["id"]],
            )
            for day in days
        ]
    )


async def get_itinerary(principal: OperatorPrincipal, route_id: UUID) -> ItineraryOut:
    await owned_route(principal, route_id)
    return await itinerary_of(route_id)


def _check_itinerary(data: ItineraryIn, duration_days: int) -> None:
    seen: set[int] = set()
    for index, day in enumerate(data.days):
        if day.day_number in seen:
            raise InvalidInput(f"days[{index}].day_number", _("Each day number may appear once."))
        if day.day_number > duration_days:
            raise InvalidInput(
                f"days[{index}].day_number",
                _("The route lasts {days} days.").format(days=duration_days),
            )
        seen.add(day.day_number)
        for stop_index, stop in enumerate(day.stops):
            if stop.arrive_time and stop.depart_time and stop.depart_time < stop.arrive_time:
                raise InvalidInput(
                    f"days[{index}].stops[{stop_index}].depart_time",
                    _("Departure from a stop cannot be before arrival."),
                )


async def replace_itinerary(
    principal: OperatorPrincipal, route_id: UUID, data: ItineraryIn
) -> ItineraryOut:
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_route(principal, route_id)
        _check_itinerary(data, row["duration_days"])
        await ItineraryDay.delete().where(ItineraryDay.route == route_id).run()
        for day in sorted(data.days, key=lambda d: d.day_number):
            day_row = ItineraryDay(
                route=route_id,
                day_number=day.day_number,
                title=dict(day.title),
                description=text_dict(day.description),
                night_on_train=day.night_on_train,
            )
            await day_row.save().run()
            if day.stops:
                await ItineraryStop.insert(
                    *[
                        ItineraryStop(
                            day=day_row.id,
                            stop_order=order,
                            place=dict(stop.place),
                            arrive_time=parse_clock_time(stop.arrive_time),
                            depart_time=parse_clock_time(stop.depart_time),
                            activities=[dict(activity) for activity in stop.activities],
                            coach_transfer=stop.coach_transfer,
                            notes=text_dict(stop.notes),
                        )
                        for order, stop in enumerate(day.stops, start=1)
                    ]
                ).run()
        await Route.update({Route.updated_at: clock.now()}).where(Route.id == route_id).run()
    return await itinerary_of(route_id)


async def delete_itinerary(principal: OperatorPrincipal, route_id: UUID) -> None:
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_route(principal, route_id)
        if row["status"] == RouteStatus.published:
            raise Conflict(_("A published route must keep its itinerary."), code="route_published")
        await ItineraryDay.delete().where(ItineraryDay.route == route_id).run()


# ---------------------------------------------------------------- seasonal offers


def _offer_out(row: Row) -> SeasonalOfferOut:
    return SeasonalOfferOut(
        id=row["id"],
        name=as_dict(row["name"]) or {},
        description=as_dict(row["description"]),
        months=as_list(row["months"]),
    )


def _months(months: list[int]) -> list[int]:
    if len(set(months)) != len(months):
        raise InvalidInput("months", _("Each month may appear once."))
    return sorted(months)


async def list_offers(principal: OperatorPrincipal, route_id: UUID) -> list[SeasonalOfferOut]:
    await owned_route(principal, route_id)
    return [_offer_out(row) for row in await offers_of([route_id])]


async def offers_of(route_ids: list[UUID]) -> list[Row]:
    if not route_ids:
        return []
    rows = (
        await SeasonalOffer.select()
        .where(SeasonalOffer.route.is_in(route_ids))
        .order_by(SeasonalOffer.id)
        .output(load_json=True)
        .run()
    )
    return sorted(rows, key=lambda row: (as_list(row["months"])[:1], str(row["id"])))


async def create_offer(
    principal: OperatorPrincipal, route_id: UUID, data: SeasonalOfferIn
) -> SeasonalOfferOut:
    require_operator_admin(principal)
    months = _months(data.months)
    async with write_transaction():
        await owned_route(principal, route_id)
        offer = SeasonalOffer(
            route=route_id,
            name=dict(data.name),
            description=text_dict(data.description),
            months=months,
        )
        await offer.save().run()
    return await _offer(route_id, offer.id)


async def _offer(route_id: UUID, offer_id: UUID) -> SeasonalOfferOut:
    row = (
        await SeasonalOffer.select()
        .where((SeasonalOffer.id == offer_id) & (SeasonalOffer.route == route_id))
        .first()
        .output(load_json=True)
        .run()
    )
    if row is None:
        raise NotFound(_("Seasonal offer not found."), code="offer_not_found")
    return _offer_out(row)


async def update_offer(
    principal: OperatorPrincipal, route_id: UUID, offer_id: UUID, data: SeasonalOfferUpdate
) -> SeasonalOfferOut:
    require_operator_admin(principal)
    async with write_transaction():
        await owned_route(principal, route_id)
        await _offer(route_id, offer_id)
        values: dict[Any, Any] = {}
        if data.name is not msgspec.UNSET:
            values[SeasonalOffer.name] = dict(data.name)
        if data.description is not msgspec.UNSET:
            values[SeasonalOffer.description] = text_dict(data.description)
        if data.months is not msgspec.UNSET:
            values[SeasonalOffer.months] = _months(data.months)
        if values:
            await SeasonalOffer.update(values).where(SeasonalOffer.id == offer_id).run()
    return await _offer(route_id, offer_id)


async def delete_offer(principal: OperatorPrincipal, route_id: UUID, offer_id: UUID) -> None:
    require_operator_admin(principal)
    async with write_transaction():
        await owned_route(principal, route_id)
        await _offer(route_id, offer_id)
        await SeasonalOffer.delete().where(SeasonalOffer.id == offer_id).run()
