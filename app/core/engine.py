"""The configured Piccolo engine (PICCOLO_CONF), for modules that run queries or
transactions without configuring the database themselves."""

from __future__ import annotations

from typing import Any

from piccolo.engine.base import Engine
from piccolo.engine.finder import engine_finder
from piccolo.engine.sqlite import SQLiteEngine


def get_engine() -> Engine[Any]:
    engine = engine_finder()
    if engine is None:
        raise RuntimeError("Piccolo engine not configured (PICCOLO_CONF)")
    return engine


def is_sqlite() -> bool:
    return isinstance(get_engine(), SQLiteEngine)
