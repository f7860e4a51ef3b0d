"""Page-number pagination with a capped page size."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar.params import QueryParameter
from piccolo.columns import Column
from piccolo.custom_types import Combinable
from piccolo.table import Table

from app.core.errors import InvalidInput
from app.core.i18n import _
from app.core.settings import Settings

T = TypeVar("T")


class PageParams(msgspec.Struct, frozen=True):
    page: int
    page_size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


class Page(msgspec.Struct, Generic[T], kw_only=True):
    items: list[T]
    page: int
    page_size: int
    total: int


def page_of(items: list[T], params: PageParams, total: int) -> Page[T]:
    return Page(items=items, page=params.page, page_size=params.page_size, total=total)


# Far beyond any list here, and within every database's integer range for OFFSET.
MAX_PAGE = 100_000


def page_params_provider(settings: Settings) -> Callable[..., PageParams]:
    """The `page_params` dependency of an app with `settings`: its OpenAPI parameters say
    the limits it enforces (`minimum: 1`, and `maximum`: the setting's page size)."""

    def provide_page_params(
        page: int = 1, page_size: int = settings.default_page_size
    ) -> PageParams:
        if page < 1 or page > MAX_PAGE:
            raise InvalidInput(
                "page",
                _("Must be between 1 and {maximum}.").format(maximum=MAX_PAGE),
                source="query",
            )
        size = page_size
        if size < 1 or size > settings.max_page_size:
            raise InvalidInput(
                "page_size",
                _("Must be between 1 and {maximum}.").format(maximum=settings.max_page_size),
                source="query",
                code="page_size_too_large" if size > settings.max_page_size else None,
            )
        return PageParams(page=page, page_size=size)

    # Set here, not written in the signature: the maximum is this app's setting. Only
    # documented (schema_extra): the checks above answer with their own messages and codes.
    provide_page_params.__annotations__ = {
        "page": Annotated[
            int,
            QueryParameter(
                name="page",
                description="Page number, from 1",
                schema_extra={"minimum": 1, "maximum": MAX_PAGE},
            ),
        ],
        "page_size": Annotated[
            int,
            QueryParameter(
                name="page_size",
                description=f"Items per page, 1 to {settings.max_page_size}",
                schema_extra={"minimum": 1, "maximum": settings.max_page_size},
            ),
        ],
        "return": PageParams,
    }
    return provide_page_params


async def fetch_page(
    table: type[Table],
    where: Combinable | None,
    params: PageParams,
    order_by: Sequence[tuple[Column, bool]],
    load_json: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """One page of rows and the total count. `order_by` is (column, ascending) pairs;
    end it with a unique column so that pages never overlap."""
    count = table.count()
    select = table.select()
    if where is not None:
        count = count.where(where)
        select = select.where(where)
    for column, ascending in order_by:
        select = select.order_by(column, ascending=ascending)
    rows = (
        await select.limit(params.page_size).offset(params.offset).output(load_json=load_json).run()
    )
    return rows, await count.run()
