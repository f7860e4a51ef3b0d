"""Settings: read from the environment with documented defaults; production refuses unsafe ones."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from app.asgi import create_app
from app.core.database import _asyncpg_config
from app.core.settings import (
    DEVELOPMENT_PUBLIC_URL,
    DEVELOPMENT_SECRET_KEY,
    PROJECT_ROOT,
    Settings,
    load_settings,
    variables,
)

# Every variable load_settings() reads.
VARIABLES = (
    "TOURLINE_ENV",
    "DATABASE_URL",
    "DATABASE_POOL_MIN",
    "DATABASE_POOL_MAX",
    "REDIS_URL",
    "TOURLINE_SECRET_KEY",
    "TOURLINE_PUBLIC_URL",
    "TOURLINE_TOKEN_TTL_MINUTES",
    "TOURLINE_MAX_BODY_BYTES",
    "TOURLINE_MAX_PAGE_SIZE",
    "TOURLINE_DEFAULT_PAGE_SIZE",
    "TOURLINE_DEFAULT_LOCALE",
    "TOURLINE_TIME_ZONE",
    "TOURLINE_CORS_ORIGINS",
    "TOURLINE_LOCALES_DIR",
    "TOURLINE_PASSWORD_HASHING",
    "TOURLINE_LOG_SQL",
)
PRODUCTION_KEY = "k7Qp2vX9mR4tW8yZ1bN6cF3hJ5lS0dGa"  # 32 characters
POSTGRES_URL = "postgresql://tourline:s3cr%40t@db.internal:6432/tourline"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment with none of the settings variables set (the test run sets several)."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def production(**changes: Any) -> Settings:
    safe = Settings(
        environment="production",
        database_url=POSTGRES_URL,
        secret_key=PRODUCTION_KEY,
        password_hashing="standard",
        public_url="https://tourline.example",
    )
    return dataclasses.replace(safe, **changes)


# ---------------------------------------------------------------- load_settings()


def test_defaults_are_an_embedded_development_setup(env: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.environment == "development"
    assert not settings.is_production
    assert settings.database_url == f"sqlite:///{PROJECT_ROOT / 'var' / 'tourline.sqlite3'}"
    assert not settings.uses_postgres
    assert settings.sqlite_path == PROJECT_ROOT / "var" / "tourline.sqlite3"
    assert settings.redis_url == ""
    assert settings.max_page_size == 100
    assert settings.default_page_size == 20
    assert settings.default_page_size <= settings.max_page_size
    assert settings.secret_key == DEVELOPMENT_SECRET_KEY
    assert settings.password_hashing == "standard"
    assert settings.cors_origins == ()
    assert settings.default_locale == "zh_Hans"
    assert settings.time_zone == "Asia/Shanghai"
    assert settings.locales_dir == PROJECT_ROOT / "locales"
    assert settings.log_sql is False
    assert (settings.database_pool_min, settings.database_pool_max) == (1, 10)
    # The development defaults pass the safety check: it only applies to production.
    settings.check_production_safety()


def test_variables_override_the_defaults(env: pytest.MonkeyPatch) -> None:
    env.setenv("TOURLINE_MAX_PAGE_SIZE", "50")
    env.setenv("TOURLINE_DEFAULT_PAGE_SIZE", " 10 ")
    env.setenv("REDIS_URL", "redis://cache:6379/2")
    env.setenv("TOURLINE_LOG_SQL", "yes")
    env.setenv("TOURLINE_TOKEN_TTL_MINUTES", "")
    settings = load_settings()
    assert settings.max_page_size == 50
    assert settings.default_page_size == 10
    assert settings.redis_url == "redis://cache:6379/2"
    assert settings.log_sql is True
    # Blank means the default.
    assert settings.token_ttl_minutes == 12 * 60


def test_postgresql_url(env: pytest.MonkeyPatch) -> None:
    env.setenv("DATABASE_URL", POSTGRES_URL)
    settings = load_settings()
    assert settings.database_url == POSTGRES_URL
    assert settings.uses_postgres
    with pytest.raises(ValueError, match="SQLite"):
        _ = settings.sqlite_path
    assert _asyncpg_config(settings.database_url) == {
        "host": "db.internal",
        "port": 6432,
        "user": "tourline",
        "password": "s3cr@t",
        "database": "tourline",
    }
    env.setenv("DATABASE_URL", "postgres://db.internal/app")
    short = load_settings()
    assert short.uses_postgres
    assert _asyncpg_config(short.database_url) == {
        "host": "db.internal",
        "port": 5432,
        "user": "postgres",
        "database": "app",
    }


def test_sqlite_url(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/data/tourline.sqlite3")
    settings = load_settings()
    assert not settings.uses_postgres
    assert settings.sqlite_path == tmp_path / "data" / "tourline.sqlite3"
    env.setenv("DATABASE_URL", "")
    assert load_settings().sqlite_path == PROJECT_ROOT / "var" / "tourline.sqlite3"


@pytest.mark.parametrize(
    "url",
    ["mysql://root@db/tourline", "sqlite://relative.db", "tourline.sqlite3", "redis://cache:6379"],
)
def test_a_bad_database_url_is_refused(env: pytest.MonkeyPatch, url: str) -> None:
    env.setenv("DATABASE_URL", url)
    with pytest.raises(ValueError, match="DATABASE_URL"):
        load_settings()


@pytest.mark.parametrize("url", ["tourline.example", "ftp://tourline.example", "//x"])
def test_a_public_url_without_its_scheme_is_refused(env: pytest.MonkeyPatch, url: str) -> None:
    env.setenv("TOURLINE_PUBLIC_URL", url)
    with pytest.raises(ValueError, match="TOURLINE_PUBLIC_URL"):
        load_settings()


@pytest.mark.parametrize("value", ["lots", "1.5", "100k"])
def test_a_non_integer_page_size_is_refused(env: pytest.MonkeyPatch, value: str) -> None:
    env.setenv("TOURLINE_MAX_PAGE_SIZE", value)
    with pytest.raises(ValueError, match="TOURLINE_MAX_PAGE_SIZE") as raised:
        load_settings()
    assert repr(value) in str(raised.value)


@pytest.mark.parametrize(
    ("raw", "origins"),
    [
        ("https://tourline.example", ("https://tourline.example",)),
        (
            " https://a.example , https://b.example,,",
            ("https://a.example", "https://b.example"),
        ),
        ("", ()),
        (" , ", ()),
    ],
)
def test_cors_origins_are_a_comma_separated_list(
    env: pytest.MonkeyPatch, raw: str, origins: tuple[str, ...]
) -> None:
    env.setenv("TOURLINE_CORS_ORIGINS", raw)
    assert load_settings().cors_origins == origins


# ---------------------------------------------------------------- production safety


def test_a_proper_production_configuration_is_accepted(env: pytest.MonkeyPatch) -> None:
    production().check_production_safety()
    env.setenv("TOURLINE_ENV", "production")
    env.setenv("DATABASE_URL", POSTGRES_URL)
    env.setenv("TOURLINE_SECRET_KEY", PRODUCTION_KEY)
    env.setenv("TOURLINE_PUBLIC_URL", "https://tourline.example/")
    settings = load_settings()
    assert settings.is_production
    assert settings.public_url == "https://tourline.example"
    settings.check_production_safety()


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"secret_key": DEVELOPMENT_SECRET_KEY}, "TOURLINE_SECRET_KEY"),
        ({"secret_key": PRODUCTION_KEY[:31]}, "TOURLINE_SECRET_KEY"),
        ({"secret_key": ""}, "TOURLINE_SECRET_KEY"),
        ({"database_url": "sqlite:///var/tourline.sqlite3"}, "DATABASE_URL"),
        ({"password_hashing": "fast"}, "TOURLINE_PASSWORD_HASHING"),
        ({"public_url": DEVELOPMENT_PUBLIC_URL}, "TOURLINE_PUBLIC_URL"),
    ],
)
def test_production_refuses_unsafe_settings(changes: dict[str, str], variable: str) -> None:
    with pytest.raises(RuntimeError, match="refusing to start in production") as raised:
        production(**changes).check_production_safety()
    assert variable in str(raised.value)
    # The same settings outside production are fine.
    dataclasses.replace(production(**changes), environment="development").check_production_safety()


def test_production_lists_every_problem_at_once() -> None:
    settings = production(
        secret_key=DEVELOPMENT_SECRET_KEY,
        database_url="sqlite:///var/tourline.sqlite3",
        password_hashing="fast",
    )
    with pytest.raises(RuntimeError) as raised:
        settings.check_production_safety()
    for variable in ("TOURLINE_SECRET_KEY", "DATABASE_URL", "TOURLINE_PASSWORD_HASHING"):
        assert variable in str(raised.value)


def test_production_from_the_environment_with_development_defaults_is_refused(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("TOURLINE_ENV", "production")
    settings = load_settings()
    with pytest.raises(RuntimeError) as raised:
        settings.check_production_safety()
    assert "TOURLINE_SECRET_KEY" in str(raised.value)
    assert "DATABASE_URL" in str(raised.value)


def test_create_app_refuses_an_unsafe_production_configuration() -> None:
    with pytest.raises(RuntimeError, match="TOURLINE_SECRET_KEY"):
        create_app(production(secret_key=DEVELOPMENT_SECRET_KEY))
    with pytest.raises(RuntimeError, match="DATABASE_URL"):
        create_app(production(database_url="sqlite:///var/tourline.sqlite3"))
    with pytest.raises(RuntimeError, match="TOURLINE_PASSWORD_HASHING"):
        create_app(production(password_hashing="fast"))
    # A safe one builds (nothing connects before startup).
    app = create_app(production())
    assert app.state["settings"] == production()


def test_every_setting_is_read_from_its_documented_variable(env: pytest.MonkeyPatch) -> None:
    """Each setting is declared once (variable, default, meaning) and listed in the README."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    documented = variables()
    assert len(documented) == len(dataclasses.fields(Settings))
    assert [name for name in documented if f"`{name}`" not in readme] == []
    assert all(meaning for meaning in documented.values())
    settings = load_settings({"TOURLINE_SEND_LEASE_SECONDS": "1", "SMTP_STARTTLS": "on"})
    assert (settings.send_lease_seconds, settings.smtp_starttls) == (2, True)


def test_only_the_composition_roots_fetch_the_settings() -> None:
    """Everything else is handed them (the `settings` dependency, a worker's context, or a
    module configured once at startup)."""
    roots = {"app/asgi.py", "app/cli.py", "app/piccolo_conf.py", "app/core/settings.py"}
    fetching = sorted(
        str(path.relative_to(PROJECT_ROOT))
        for folder in ("app", "workers")
        for path in (PROJECT_ROOT / folder).rglob("*.py")
        if "get_settings(" in path.read_text()
    )
    assert [
        path for path in fetching if path not in roots and not path.startswith("workers/")
    ] == []
