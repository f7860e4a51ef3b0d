"""Shared API types: translated text, slugs, e-mail addresses."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

ContentLocale = Literal["zh_Hans", "en"]

# Operators enter content in several languages; at least one must be given.
LocalizedText = Annotated[
    dict[ContentLocale, Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]],
    msgspec.Meta(
        min_length=1,
        description="Text by locale; the reader's language is shown, with fallback",
        examples=[{"zh_Hans": "采摘号", "en": "Picking Line"}],
    ),
]
ShortLocalizedText = Annotated[
    dict[ContentLocale, Annotated[str, msgspec.Meta(min_length=1, max_length=200)]],
    msgspec.Meta(min_length=1, examples=[{"zh_Hans": "郑州站", "en": "Zhengzhou Station"}]),
]
Slug = Annotated[
    str,
    msgspec.Meta(
        pattern="^[a-z0-9]+(-[a-z0-9]+)*$",
        min_length=2,
        max_length=80,
        examples=["picking-line"],
        description="Lower-case letters, digits and single hyphens",
    ),
]
Email = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254, examples=["ops@example.cn"]
    ),
]
Phone = Annotated[
    str, msgspec.Meta(pattern=r"^\+?[0-9 ()-]{5,32}$", examples=["+86 371 6666 8888"])
]
ClockTime = Annotated[
    str, msgspec.Meta(pattern="^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["08:30"])
]
TimeZoneName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, examples=["Asia/Shanghai"])]


class Message(msgspec.Struct, kw_only=True):
    message: str
