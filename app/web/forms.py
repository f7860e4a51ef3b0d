"""HTML forms on top of the API's structures: a form's fields are named like the API's JSON
paths (`contact.email`, `passengers[0].name`), so a validation or domain error names the
field to mark on the page, exactly as the API's problem response would."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from litestar.datastructures import FormMultiDict

from app.core.errors import DomainError, field_of
from app.core.i18n import N_, _

T = TypeVar("T")


@dataclass
class FormProblems:
    """What the reader must fix: one message per form field, and one for the whole form."""

    summary: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.summary or self.fields)

    def add(self, name: str, message: str) -> None:
        self.fields.setdefault(name, message)

    @classmethod
    def of(cls, exc: DomainError) -> FormProblems:
        problems = cls(summary=exc.detail or exc.title())
        for error in exc.errors or []:
            problems.add(error.field, error.message)
        return problems


def field_id(name: str) -> str:
    """An HTML id for a field name: `passengers[0].name` -> `passengers-0-name`."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", name).strip("-")


def text(form: FormMultiDict, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


# Clearer than "wrong format" for the fields everyone fills in.
_FORMAT_HINTS = {
    "email": N_("Give an email address, e.g. name@example.com."),
    "phone": N_("Give a phone number with its country code, e.g. +86 138 0013 8000."),
}


def convert(data: dict[str, Any], kind: type[T], problems: FormProblems) -> T | None:
    """`data` as `kind`, validated as the API validates JSON; on failure the field is noted."""
    try:
        return msgspec.convert(data, type=kind)
    except msgspec.ValidationError as exc:
        name, message = field_of("", str(exc))
        hint = _FORMAT_HINTS.get(name.rsplit(".", 1)[-1])
        problems.add(name, _(hint) if hint and "regex" in str(exc) else message)
        return None


def small_number(raw: str) -> int | None:
    """A count typed in a form: ASCII digits, at most three of them; otherwise None (so
    "²" or a 5,000-digit string is a field error, not a crash)."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 3 else None
