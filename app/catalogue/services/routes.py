"""Operators' routes (themed lines): create, change, publish, archive, delete."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

import msgspec
from piccolo.custom_types import Combinable

from app.accounts.schemas import OperatorPrincipal
from app.accounts.services import require_operator_admin
from app.catalogue.schemas.routes import (
    PolicyTier,
    PolicyTierOut,
    RouteCreate,
    RouteOut,
    RouteUpdate,
)
from app.catalogue.services.common import (
    Row,
    as_dict,
    as_list,
    owned_route,
    text_dict,
)
from app.catalogue.services.itineraries import last_itinerary_day
from app.catalogue.tables import (
    Departure,
    ItineraryDay,
    Route,
    RouteStatus,
    RouteTheme,
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
        if row.status == RouteStatus.archived:
            raise Conflict(_("An archived route cannot be changed."), code="route_archived")
        values: dict[Any, Any] = {Route.updated_at: clock.now()}
        if data.slug is not msgspec.UNSET and data.slug != row.slug:
            if row.status == RouteStatus.published:
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
            last_day = await last_itinerary_day(route_id)
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
        name = values.get(Route.name, row.name)
        description = values.get(Route.description, row.description)
        slug = str(values.get(Route.slug, row.slug))
        values[Route.search_text] = search_text(name, description, extra=[slug])
        await Route.update(values).where(Route.id == route_id).run()
        if data.themes is not msgspec.UNSET:
            await _replace_themes(route_id, (theme.value for theme in data.themes))
    return await route_out(route_id)


async def delete_route(principal: OperatorPrincipal, route_id: UUID) -> None:
    require_operator_admin(principal)
    async with write_transaction():
        row = await owned_route(principal, route_id)
        if row.status != RouteStatus.draft:
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
        current = row.status
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
