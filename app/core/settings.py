"""Settings: one typed object read from the environment, with documented defaults.

Every variable is listed in README.md. Secrets have development defaults only; with
`TOURLINE_ENV=production` the service refuses to start while any of them is left at its
development value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

DEVELOPMENT_SECRET_KEY = "development-only-secret-key-change-me-0123456789"
# What `tourline serve` listens on by default; production sets its own.
DEVELOPMENT_PUBLIC_URL = "http://127.0.0.1:8000"


def _env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _default_sqlite_url() -> str:
    return f"sqlite:///{PROJECT_ROOT / 'var' / 'tourline.sqlite3'}"


@dataclass(frozen=True, slots=True)
class Settings:
    # `development` or `production`; production refuses development secrets.
    environment: str = "development"
    # `sqlite:///path/to/file` (default: ./var/tourline.sqlite3) or `postgresql://...`.
    database_url: str = field(default_factory=_default_sqlite_url)
    # PostgreSQL connection pool bounds (ignored for SQLite).
    database_pool_min: int = 1
    database_pool_max: int = 10
    # Seconds before the database counts as unavailable (a 503 to the client): opening a
    # connection; running one statement (PostgreSQL; on SQLite, waiting for the write
    # lock); waiting for a free connection of the pool.
    database_connect_timeout: int = 3
    database_statement_timeout: int = 5
    database_acquire_timeout: int = 5
    # `redis://host:port/db`; empty means no Redis (the embedded default).
    redis_url: str = ""
    # The Redis list (arq queue) that jobs go to and workers take them from: distinct
    # names let several installations (or test runs) share one Redis.
    job_queue: str = "arq:queue"
    # Signs staff JWTs.
    secret_key: str = DEVELOPMENT_SECRET_KEY
    # Lifetime of a staff login token.
    token_ttl_minutes: int = 12 * 60
    # Largest request body accepted, in bytes; larger bodies get 413.
    max_body_bytes: int = 1_000_000
    # Largest page size a list endpoint accepts; larger values get 400.
    max_page_size: int = 100
    default_page_size: int = 20
    # Locale used when the reader asks for none we have.
    default_locale: str = "zh_Hans"
    # Time zone of date filters that span operators (e.g. the public route search).
    time_zone: str = "Asia/Shanghai"
    # Origins allowed to call the API from a browser.
    cors_origins: tuple[str, ...] = ()
    # Folder of the gettext catalogs (locales/<lang>/LC_MESSAGES/messages.po|mo).
    locales_dir: Path = PROJECT_ROOT / "locales"
    # `standard` argon2 cost, or `fast` for test suites only (refused in production).
    password_hashing: str = "standard"
    # Stripe: secret and publishable keys, webhook signing secret; empty means card
    # payment is not configured. `stripe_api_base` points the SDK elsewhere (tests).
    stripe_secret_key: str = ""
    stripe_publishable_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""
    # Payment method types offered: card by default; alipay and wechat_pay can be added.
    stripe_payment_method_types: tuple[str, ...] = ("card",)
    # Payment providers enabled, by built-in name (`stripe`, `on_account`) or dotted path
    # (`package.module` or `package.module:Class`); tourists pay through the first one
    # listed that takes their payments (see app/payments/providers/).
    payment_providers: tuple[str, ...] = ("stripe", "on_account")
    # Where tourists open the pages: links in messages (a booking's own link) start here.
    public_url: str = DEVELOPMENT_PUBLIC_URL
    # Requests per minute a partner API key may make (shared across processes via Redis).
    partner_rate_limit: int = 120
    # Requests per minute per client IP on the public API (0: no limit).
    public_rate_limit: int = 600
    # How long public catalogue answers (lines, departures, seats left, seat maps) may be
    # served from a process's cache (0: never). Bookings always see the database.
    public_cache_seconds: int = 2
    # Failed logins per 15 minutes for one email (and 5x that for one client IP).
    login_failure_limit: int = 10
    # When set, /metrics wants `Authorization: Bearer <this token>`.
    metrics_token: str = ""
    # "json" (one object per line, with the request id) or "text".
    log_format: str = "json"
    # Outgoing mail; an empty host means mail is only logged (development).
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    mail_from: str = "Tourline <no-reply@tourline.example>"
    # How long a worker holds a claimed message (mail, SMS, partner webhook) before
    # another may send it again; each send is cut off after half of it, so a slow server
    # can never outlast the claim.
    send_lease_seconds: int = 120
    # Log SQL statements (development aid).
    log_sql: bool = False

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


def load_settings() -> Settings:
    defaults = Settings()
    database_url = _env_str("DATABASE_URL", "") or defaults.database_url
    if not database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ValueError("DATABASE_URL must start with sqlite:/// or postgresql://")
    public_url = _env_str("TOURLINE_PUBLIC_URL", defaults.public_url).rstrip("/")
    if not public_url.startswith(("http://", "https://")):
        raise ValueError("TOURLINE_PUBLIC_URL must start with http:// or https://")
    environment = _env_str("TOURLINE_ENV", defaults.environment)
    if environment not in ("development", "test", "production"):
        raise ValueError("TOURLINE_ENV must be development, test or production")
    payment_providers = _env_list("TOURLINE_PAYMENT_PROVIDERS", defaults.payment_providers)
    if not payment_providers:
        # Every payment and refund row names its provider: one must handle them.
        raise ValueError("TOURLINE_PAYMENT_PROVIDERS must name at least one provider")
    return Settings(
        environment=environment,
        database_url=database_url,
        database_pool_min=_env_int("DATABASE_POOL_MIN", defaults.database_pool_min),
        database_pool_max=_env_int("DATABASE_POOL_MAX", defaults.database_pool_max),
        database_connect_timeout=_env_int(
            "DATABASE_CONNECT_TIMEOUT", defaults.database_connect_timeout
        ),
        database_statement_timeout=_env_int(
            "DATABASE_STATEMENT_TIMEOUT", defaults.database_statement_timeout
        ),
        database_acquire_timeout=_env_int(
            "DATABASE_ACQUIRE_TIMEOUT", defaults.database_acquire_timeout
        ),
        redis_url=_env_str("REDIS_URL", defaults.redis_url),
        job_queue=_env_str("TOURLINE_JOB_QUEUE", defaults.job_queue),
        secret_key=_env_str("TOURLINE_SECRET_KEY", defaults.secret_key),
        token_ttl_minutes=_env_int("TOURLINE_TOKEN_TTL_MINUTES", defaults.token_ttl_minutes),
        max_body_bytes=_env_int("TOURLINE_MAX_BODY_BYTES", defaults.max_body_bytes),
        max_page_size=_env_int("TOURLINE_MAX_PAGE_SIZE", defaults.max_page_size),
        default_page_size=_env_int("TOURLINE_DEFAULT_PAGE_SIZE", defaults.default_page_size),
        default_locale=_env_str("TOURLINE_DEFAULT_LOCALE", defaults.default_locale),
        time_zone=_env_str("TOURLINE_TIME_ZONE", defaults.time_zone),
        cors_origins=_env_list("TOURLINE_CORS_ORIGINS", defaults.cors_origins),
        locales_dir=Path(_env_str("TOURLINE_LOCALES_DIR", str(defaults.locales_dir))),
        password_hashing=_env_str("TOURLINE_PASSWORD_HASHING", defaults.password_hashing),
        stripe_secret_key=_env_str("STRIPE_SECRET_KEY", defaults.stripe_secret_key),
        stripe_publishable_key=_env_str("STRIPE_PUBLISHABLE_KEY", defaults.stripe_publishable_key),
        stripe_webhook_secret=_env_str("STRIPE_WEBHOOK_SECRET", defaults.stripe_webhook_secret),
        stripe_api_base=_env_str("STRIPE_API_BASE", defaults.stripe_api_base),
        stripe_payment_method_types=_env_list(
            "STRIPE_PAYMENT_METHOD_TYPES", defaults.stripe_payment_method_types
        ),
        payment_providers=payment_providers,
        public_url=public_url,
        partner_rate_limit=_env_int("TOURLINE_PARTNER_RATE_LIMIT", defaults.partner_rate_limit),
        public_rate_limit=_env_int("TOURLINE_PUBLIC_RATE_LIMIT", defaults.public_rate_limit),
        public_cache_seconds=_env_int(
            "TOURLINE_PUBLIC_CACHE_SECONDS", defaults.public_cache_seconds
        ),
        login_failure_limit=_env_int("TOURLINE_LOGIN_FAILURE_LIMIT", defaults.login_failure_limit),
        metrics_token=_env_str("TOURLINE_METRICS_TOKEN", defaults.metrics_token),
        log_format=_env_str("TOURLINE_LOG_FORMAT", defaults.log_format),
        smtp_host=_env_str("SMTP_HOST", defaults.smtp_host),
        smtp_port=_env_int("SMTP_PORT", defaults.smtp_port),
        smtp_username=_env_str("SMTP_USERNAME", defaults.smtp_username),
        smtp_password=_env_str("SMTP_PASSWORD", defaults.smtp_password),
        smtp_starttls=_env_bool("SMTP_STARTTLS", defaults.smtp_starttls),
        mail_from=_env_str("TOURLINE_MAIL_FROM", defaults.mail_from),
        send_lease_seconds=max(
            2, _env_int("TOURLINE_SEND_LEASE_SECONDS", defaults.send_lease_seconds)
        ),
        log_sql=_env_bool("TOURLINE_LOG_SQL", defaults.log_sql),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
