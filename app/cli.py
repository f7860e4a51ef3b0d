"""The `tourline` command: serve, migrate, demo data, bootstrap accounts."""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
import msgspec

from app.accounts import operators
from app.accounts.schemas import OperatorCreate, StaffCreate
from app.accounts.services import create_staff
from app.accounts.tables import StaffRole
from app.core import database, i18n
from app.core.database import migrate as run_migrations
from app.core.errors import DomainError
from app.core.i18n import DOMAIN, SUPPORTED_LOCALES
from app.core.settings import PROJECT_ROOT, get_settings
from app.wiring import configure_process, wire_domains

T = TypeVar("T")


def _run(make: Callable[[], Awaitable[T]]) -> T:
    """Run one async job with the process configured, the domains wired and the database
    open, then close it."""
    wire_domains()

    configure_process(get_settings())

    async def job() -> T:
        await database.open_database(get_settings())
        try:
            return await make()
        finally:
            await database.close_database()

    return asyncio.run(job())


@click.group()
def main() -> None:
    """Tourline: themed tourist trains and leisure bus lines."""


def _refuse_unsafe_production() -> None:
    """Before touching anything: production with development settings stops here."""

    try:
        get_settings().check_production_safety()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
def migrate() -> None:
    """Apply pending database migrations."""

    _refuse_unsafe_production()
    _run(lambda: run_migrations(quiet=False))
    click.echo("migrations applied")


# How long a stopping server lets requests in flight finish.
GRACEFUL_SHUTDOWN_SECONDS = 30


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--reload", is_flag=True, help="Restart on code changes (development).")
@click.option("--workers", default=1, show_default=True, type=int, help="Server processes.")
@click.option(
    "--server",
    type=click.Choice(["uvicorn", "granian"]),
    default="uvicorn",
    show_default=True,
    help="ASGI server (bench/availability.py compares them).",
)
@click.option("--demo", is_flag=True, help="Load the demo data before serving.")
def serve(host: str, port: int, reload: bool, workers: int, server: str, demo: bool) -> None:
    """Migrate the database, then serve the API."""
    _refuse_unsafe_production()

    i18n.configure(get_settings().locales_dir)
    i18n.compile_catalogs()
    _run(lambda: run_migrations(quiet=True))
    if demo:
        # The demo's data is loaded only by the commands that load it.
        from app.demo.data import load_demo

        click.echo(_run(lambda: load_demo(get_settings())).summary())
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if metrics_dir:
        # Series of processes from an earlier run would be added to this run's.
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.makedirs(metrics_dir, exist_ok=True)
    click.echo(f"Tourline on http://{host}:{port}  (API docs: http://{host}:{port}/schema)")
    run_asgi_server(
        "app.asgi:create_app",
        server=server,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        # Granian leaves X-Forwarded-For alone: the app resolves trusted proxies itself.
        granian_target="app.asgi:create_app_behind_proxy",
    )


def run_asgi_server(
    target: str,
    *,
    server: str,
    host: str,
    port: int,
    workers: int,
    reload: bool = False,
    granian_target: str | None = None,
) -> None:
    """Serve the app factory `target` ("module:function") the way production does; also
    used by bench/hello_app.py, so that benchmarks compare like with like."""
    if server == "granian" and not reload:
        # granian is optional (`pip install granian`); uvicorn is the default server.
        from granian import Granian
        from granian.constants import Interfaces

        # Granian stops gracefully on SIGTERM: requests in flight finish, lifespans close.
        Granian(
            granian_target or target,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            workers=workers,
            factory=True,
            workers_kill_timeout=GRACEFUL_SHUTDOWN_SECONDS,
        ).serve()
        return
    # Loaded by the command that serves, not by every other command.
    import uvicorn

    # Uvicorn shuts down gracefully on SIGTERM, then re-raises the signal with the handler it
    # found: make that handler exit 0 so that process managers see a clean stop, not -15.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(0))
    uvicorn.run(
        target,
        factory=True,
        host=host,
        port=port,
        reload=reload,
        workers=None if reload else workers,
        proxy_headers=True,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        log_level="info",
    )


@main.command()
def worker() -> None:
    """Run the background worker (needs REDIS_URL): holds, outbox, reminders, refunds.
    It keeps running through Redis outages and reconnects by itself."""
    _refuse_unsafe_production()

    if not get_settings().redis_url:
        raise click.UsageError(
            "REDIS_URL is not set: without Redis, `tourline serve` runs the jobs itself"
        )
    # The workers compose every domain's jobs: loaded by the command that runs them.
    from workers.runner import run

    run()


@main.command()
def demo() -> None:
    """Load the demo operators, lines and departures (idempotent)."""
    # The demo's data is loaded only by the commands that load it.
    from app.demo.data import load_demo

    _run(lambda: run_migrations(quiet=True))
    click.echo(_run(lambda: load_demo(get_settings())).summary())


def _password(value: str | None) -> str:
    if value:
        return value
    env = os.environ.get("TOURLINE_BOOTSTRAP_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        raise click.UsageError("give --password or TOURLINE_BOOTSTRAP_PASSWORD")
    return getpass.getpass("Password (10+ characters): ")


@main.command("create-operator")
@click.option("--slug", required=True)
@click.option("--name-zh", required=True, help="Name in Chinese")
@click.option("--name-en", required=True, help="Name in English")
@click.option("--email", required=True, help="Contact email")
@click.option("--phone", required=True, help="Contact phone")
@click.option("--currency", default="CNY", show_default=True)
@click.option("--time-zone", default="Asia/Shanghai", show_default=True)
@click.option("--admin-email", help="Also create this operator's first admin")
@click.option("--admin-name", default="Operator admin", show_default=True)
@click.option("--admin-password", help="Password of that admin (or TOURLINE_BOOTSTRAP_PASSWORD)")
def create_operator(
    slug: str,
    name_zh: str,
    name_en: str,
    email: str,
    phone: str,
    currency: str,
    time_zone: str,
    admin_email: str | None,
    admin_name: str,
    admin_password: str | None,
) -> None:
    """Create an operator (and optionally its first admin login)."""

    operator_data = _validated(
        OperatorCreate,
        {
            "slug": slug,
            "name": {"zh_Hans": name_zh, "en": name_en},
            "contact_email": email,
            "contact_phone": phone,
            "currency": currency,
            "time_zone": time_zone,
        },
    )
    staff_data = None
    if admin_email:
        staff_data = _validated(
            StaffCreate,
            {
                "email": admin_email,
                "name": admin_name,
                "password": _password(admin_password),
                "role": StaffRole.operator_admin.value,
            },
        )

    async def job() -> None:
        await run_migrations(quiet=True)
        operator = await operators.create_operator(operator_data)
        click.echo(f"operator {operator.slug} created: {operator.id}")
        if staff_data is not None:
            staff = await create_staff(staff_data, operator.id)
            click.echo(f"admin {staff.email} created")

    _run_domain(job)


@main.command("create-staff")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option(
    "--role",
    type=click.Choice(["platform_admin", "operator_admin", "operator_staff"]),
    default="operator_staff",
    show_default=True,
)
@click.option("--operator", "operator_slug", help="Operator slug (not for platform admins)")
@click.option("--password", help="Password (or TOURLINE_BOOTSTRAP_PASSWORD, or prompted)")
def create_staff_command(
    email: str, name: str, role: str, operator_slug: str | None, password: str | None
) -> None:
    """Create a staff login: a platform admin, or an operator's admin or staff."""

    if (role == "platform_admin") == bool(operator_slug):
        raise click.UsageError("platform admins take no --operator; operator staff need one")
    data = _validated(
        StaffCreate, {"email": email, "name": name, "password": _password(password), "role": role}
    )

    async def job() -> None:
        await run_migrations(quiet=True)
        operator_id = None
        if operator_slug:
            operator_id = await operators.find_operator_id(operator_slug)
            if operator_id is None:
                raise click.UsageError(f"no operator with slug {operator_slug!r}")
        staff = await create_staff(data, operator_id)
        click.echo(f"{staff.role.value} {staff.email} created")

    _run_domain(job)


@main.command("i18n")
@click.argument("action", type=click.Choice(["extract", "update", "compile", "all"]))
def i18n_command(action: str) -> None:
    """Message catalogs: extract strings, update the .po files, compile the .mo files."""
    # Babel's command line is needed only to update the message catalogues.
    from babel.messages.frontend import CommandLineInterface

    locales_dir = get_settings().locales_dir
    template = str(locales_dir / f"{DOMAIN}.pot")

    def babel(*args: str) -> None:
        CommandLineInterface().run(["pybabel", *args])  # type: ignore[no-untyped-call]

    steps = ["extract", "update", "compile"] if action == "all" else [action]
    for step in steps:
        if step == "extract":
            babel(
                "extract", "-F", str(PROJECT_ROOT / "babel.cfg"),
                "-k", "_", "-k", "N_", "-k", "ngettext:1,2",
                "--no-location", "--sort-output", "--project", "Tourline", "-o", template,
                str(PROJECT_ROOT / "app"), str(PROJECT_ROOT / "workers"),
            )  # fmt: skip
        elif step == "update":
            for locale in SUPPORTED_LOCALES:
                po_path = locales_dir / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
                if po_path.exists():
                    babel("update", "-D", DOMAIN, "-i", template, "-d", str(locales_dir),
                          "-l", locale, "--no-fuzzy-matching", "--ignore-obsolete")  # fmt: skip
                else:
                    babel(
                        "init", "-D", DOMAIN, "-i", template, "-d", str(locales_dir), "-l", locale
                    )
        else:
            babel("compile", "-D", DOMAIN, "-d", str(locales_dir), "--statistics")
    click.echo(f"i18n {action}: done")


def _validated(kind: type[T], payload: dict[str, Any]) -> T:

    try:
        return msgspec.convert(payload, kind)
    except msgspec.ValidationError as exc:
        raise click.UsageError(str(exc)) from exc


def _run_domain(job: Callable[[], Awaitable[None]]) -> None:

    try:
        _run(job)
    except DomainError as exc:
        raise click.ClickException(f"{exc.code}: {exc.detail}") from exc


if __name__ == "__main__":
    main()
