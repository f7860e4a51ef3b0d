"""Settings: one typed object read from the environment, with documented defaults.

Each setting is declared once, below: its type, its environment variable, its default and
what it means. Every variable is listed in README.md. Secrets have development defaults
only; with `TOURLINE_ENV=production` the service refuses to start while any of them is
left at its development value.

Only the composition roots (app/asgi.py, app/cli.py, workers/, app/piccolo_conf.py) call
`get_settings()`; everything else is handed the settings, or the values it needs.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]

DEVELOPMENT_SECRET_KEY = "development-only-secret-key-change-me-0123456789"
# What `tourline serve` listens on by default; production sets its own.
DEVELOPMENT_PUBLIC_URL = "http://127.0.0.1:8000"


def _default_sqlite_url() -> str:
    return f"sqlite:///{PROJECT_ROOT / 'var' / 'tourline.sqlite3'}"


def setting(variable: str, default: Any, doc: str, *, blank_is_default: bool = False) -> Any:
    """One setting: the environment variable it is read from, its default and what it
    means. A blank variable means the default for numbers and flags (and wherever
    `blank_is_default`); text and lists take it as it is."""
    metadata = {"variable": variable, "doc": doc, "blank_is_default": blank_is_default}
    if callable(default):
        return dataclasses.field(default_factory=default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class Settings:
    environment: str = setting(
        "TOURLINE_ENV",
        "development",
        "`development`, `test` or `production`; production refuses development secrets.",
    )
    database_url: str = setting(
        "DATABASE_URL",
        _default_sqlite_url,
        "`sqlite:///path/to/file` (default: ./var/tourline.sqlite3) or `postgresql://...`.",
        blank_is_default=True,
    )
    database_pool_min: int = setting(
        "DATABASE_POOL_MIN", 1, "PostgreSQL connection pool bounds (ignored for SQLite)."
    )
    database_pool_max: int = setting("DATABASE_POOL_MAX", 10, "See DATABASE_POOL_MIN.")
    # Seconds before the database counts as unavailable (a 503 to the client).
    database_connect_timeout: int = setting(
        "DATABASE_CONNECT_TIMEOUT", 3, "Seconds to open a connection."
    )
    database_statement_timeout: int = setting(
        "DATABASE_STATEMENT_TIMEOUT",
        5,
        "Seconds one statement may run (PostgreSQL); on SQLite, waiting for the write lock.",
    )
    database_acquire_timeout: int = setting(
        "DATABASE_ACQUIRE_TIMEOUT", 5, "Seconds to wait for a free connection of the pool."
    )
    redis_url: str = setting(
        "REDIS_URL", "", "`redis://host:port/db`; empty means no Redis (the embedded default)."
    )
    job_queue: str = setting(
        "TOURLINE_JOB_QUEUE",
        "arq:queue",
        "The Redis list (arq queue) that jobs go to and workers take them from: distinct "
        "names let several installations (or test runs) share one Redis.",
    )
    secret_key: str = setting("TOURLINE_SECRET_KEY", DEVELOPMENT_SECRET_KEY, "Signs staff JWTs.")
    token_ttl_minutes: int = setting(
        "TOURLINE_TOKEN_TTL_MINUTES", 12 * 60, "Lifetime of a staff login token."
    )
    max_body_bytes: int = setting(
        "TOURLINE_MAX_BODY_BYTES",
        1_000_000,
        "Largest request body accepted, in bytes; larger bodies get 413.",
    )
    max_page_size: int = setting(
        "TOURLINE_MAX_PAGE_SIZE",
        100,
        "Largest page size a list endpoint accepts; larger values get 400.",
    )
    default_page_size: int = setting(
        "TOURLINE_DEFAULT_PAGE_SIZE", 20, "Page size when the client asks for none."
    )
    default_locale: str = setting(
        "TOURLINE_DEFAULT_LOCALE", "zh_Hans", "Locale used when the reader asks for none we have."
    )
    time_zone: str = setting(
        "TOURLINE_TIME_ZONE",
        "Asia/Shanghai",
        "Time zone of date filters that span operators (e.g. the public route search).",
    )
    cors_origins: tuple[str, ...] = setting(
        "TOURLINE_CORS_ORIGINS", (), "Origins allowed to call the API from a browser."
    )
    locales_dir: Path = setting(
        "TOURLINE_LOCALES_DIR",
        lambda: PROJECT_ROOT / "locales",
        "Folder of the gettext catalogs (locales/<lang>/LC_MESSAGES/messages.po|mo).",
    )
    password_hashing: str = setting(
        "TOURLINE_PASSWORD_HASHING",
        "standard",
        "`standard` argon2 cost, or `fast` for test suites only (refused in production).",
    )
    stripe_secret_key: str = setting(
        "STRIPE_SECRET_KEY", "", "Stripe secret key; empty means card payment is not configured."
    )
    stripe_publishable_key: str = setting(
        "STRIPE_PUBLISHABLE_KEY", "", "Returned to the page that runs Stripe.js."
    )
    stripe_webhook_secret: str = setting(
        "STRIPE_WEBHOOK_SECRET", "", "Signing secret of Stripe's webhook endpoint."
    )
    stripe_api_base: str = setting(
        "STRIPE_API_BASE", "", "Points the Stripe SDK elsewhere (localstripe in tests)."
    )
    stripe_payment_method_types: tuple[str, ...] = setting(
        "STRIPE_PAYMENT_METHOD_TYPES",
        ("card",),
        "Payment method types offered: card by default; alipay and wechat_pay can be added.",
    )
    payment_providers: tuple[str, ...] = setting(
        "TOURLINE_PAYMENT_PROVIDERS",
        ("stripe", "on_account"),
        "Payment providers enabled, by built-in name (`stripe`, `on_account`) or dotted path "
        "(`package.module` or `package.module:Class`); tourists pay through the first one "
        "listed that takes their payments (see app/payments/providers/).",
    )
    public_url: str = setting(
        "TOURLINE_PUBLIC_URL",
        DEVELOPMENT_PUBLIC_URL,
        "Where tourists open the pages: links in messages (a booking's own link) start here.",
    )
    partner_rate_limit: int = setting(
        "TOURLINE_PARTNER_RATE_LIMIT",
        120,
        "Requests per minute a partner API key may make (shared across processes via Redis).",
    )
    public_rate_limit: int = setting(
        "TOURLINE_PUBLIC_RATE_LIMIT",
        600,
        "Requests per minute per client IP on the public API (0: no limit).",
    )
    public_cache_seconds: int = setting(
        "TOURLINE_PUBLIC_CACHE_SECONDS",
        2,
        "How long public catalogue answers may be served from a process's cache (0: never). "
        "Bookings always see the database.",
    )
    login_failure_limit: int = setting(
        "TOURLINE_LOGIN_FAILURE_LIMIT",
        10,
        "Failed logins per 15 minutes for one email (and 5x that for one client IP).",
    )
    webhook_allow_private_networks: bool = setting(
        "TOURLINE_WEBHOOK_ALLOW_PRIVATE_NETWORKS",
        False,
        "Let agencies' webhook URLs use http and reach loopback, private, link-local and "
        "other non-public addresses (development, local test receivers); off: https to "
        "public addresses only, checked when set and at each delivery.",
    )
    metrics_token: str = setting(
        "TOURLINE_METRICS_TOKEN", "", "When set, /metrics wants it as a bearer token."
    )
    log_format: str = setting(
        "TOURLINE_LOG_FORMAT",
        "json",
        '"json" (one object per line, with the request id) or "text".',
    )
    smtp_host: str = setting(
        "SMTP_HOST", "", "Outgoing mail; an empty host means mail is only logged (development)."
    )
    smtp_port: int = setting("SMTP_PORT", 25, "Port of the SMTP server.")
    smtp_username: str = setting("SMTP_USERNAME", "", "SMTP login.")
    smtp_password: str = setting("SMTP_PASSWORD", "", "SMTP password.")
    smtp_starttls: bool = setting("SMTP_STARTTLS", False, "Whether to STARTTLS.")
    mail_from: str = setting(
        "TOURLINE_MAIL_FROM", "Tourline <no-reply@tourline.example>", "Sender of notifications."
    )
    send_lease_seconds: int = setting(
        "TOURLINE_SEND_LEASE_SECONDS",
        120,
        "How long a worker holds a claimed message (mail, SMS, partner webhook) before "
        "another may send it again; each send is cut off after half of it, so a slow server "
        "can never outlast the claim (2 at least).",
    )
    log_sql: bool = setting("TOURLINE_LOG_SQL", False, "Log SQL statements (development aid).")

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def sqlite_path(self) -> Path:
        if self.uses_postgres:
            raise ValueError("sqlite_path is only defined for SQLite database URLs")
        raw = self.database_url.removeprefix("sqlite:///")
        return Path(raw)

    def check_production_safety(self) -> None:
        """Refuse to run in production with development secrets or the embedded database."""
        if not self.is_production:
            return
        problems = []
        if self.secret_key == DEVELOPMENT_SECRET_KEY or len(self.secret_key) < 32:
            problems.append("TOURLINE_SECRET_KEY must be set to a random value of 32+ characters")
        if not self.uses_postgres:
            problems.append("DATABASE_URL must point at PostgreSQL in production")
        if self.stripe_secret_key and not self.stripe_webhook_secret:
            problems.append("STRIPE_WEBHOOK_SECRET must be set when STRIPE_SECRET_KEY is")
        if self.password_hashing != "standard":
            problems.append("TOURLINE_PASSWORD_HASHING must be standard in production")
        if self.public_url == DEVELOPMENT_PUBLIC_URL:
            problems.append(
                "TOURLINE_PUBLIC_URL must be the address tourists open (links in messages)"
            )
        if problems:
            raise RuntimeError("refusing to start in production: " + "; ".join(problems))


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def _parse_bool(name: str, raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _parse_list(name: str, raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


# How a variable's text becomes a value of each type a setting has.
_PARSERS: dict[Any, Callable[[str, str], Any]] = {
    str: lambda _name, raw: raw,
    int: _parse_int,
    bool: _parse_bool,
    tuple[str, ...]: _parse_list,
    Path: lambda _name, raw: Path(raw),
}
# Numbers and flags have no meaning when blank: a blank one is left at its default.
_BLANK_IS_DEFAULT = (int, bool)


def variables() -> dict[str, str]:
    """Each setting's environment variable and what it means (the README lists them)."""
    return {
        item.metadata["variable"]: item.metadata["doc"] for item in dataclasses.fields(Settings)
    }


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    types = typing.get_type_hints(Settings)
    values: dict[str, Any] = {}
    for item in dataclasses.fields(Settings):
        raw = environ.get(item.metadata["variable"])
        kind = types[item.name]
        if raw is None:
            continue
        if raw.strip() == "" and (item.metadata["blank_is_default"] or kind in _BLANK_IS_DEFAULT):
            continue
        values[item.name] = _PARSERS[kind](item.metadata["variable"], raw)
    return _checked(Settings(**values))


def _checked(settings: Settings) -> Settings:
    """The rules between a variable and a usable value: refused or normalized."""
    if not settings.database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ValueError("DATABASE_URL must start with sqlite:/// or postgresql://")
    public_url = settings.public_url.rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise ValueError("TOURLINE_PUBLIC_URL must start with http:// or https://")
    if settings.environment not in ("development", "test", "production"):
        raise ValueError("TOURLINE_ENV must be development, test or production")
    if not settings.payment_providers:
        # Every payment and refund row names its provider: one must handle them.
        raise ValueError("TOURLINE_PAYMENT_PROVIDERS must name at least one provider")
    return dataclasses.replace(
        settings, public_url=public_url, send_lease_seconds=max(2, settings.send_lease_seconds)
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once: for the composition roots only."""
    return load_settings()
