"""The `tourline` command, run as a real process against a fresh SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.settings import PROJECT_ROOT

ADMIN_PASSWORD = "cli-admin-password"


@pytest.fixture
def cli_database(tmp_path: Path) -> Path:
    return tmp_path / "cli.sqlite3"


def tourline(database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TOURLINE_BOOTSTRAP_PASSWORD", "REDIS_URL")
    }
    env["DATABASE_URL"] = f"sqlite:///{database}"
    env["TOURLINE_ENV"] = "development"
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def rows(database: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(database) as connection:
        return list(connection.execute(sql))


def create_operator(
    database: Path, slug: str = "cli-bus", *extra: str
) -> subprocess.CompletedProcess[str]:
    return tourline(
        database,
        "create-operator",
        "--slug",
        slug,
        "--name-zh",
        "命令行巴士",
        "--name-en",
        "CLI Bus",
        "--email",
        f"ops@{slug}.test",
        "--phone",
        "+86 371 6000 0000",
        *extra,
    )


def test_migrate_creates_the_schema_and_is_repeatable(cli_database: Path) -> None:
    first = tourline(cli_database, "migrate")
    assert first.returncode == 0, first.stderr
    assert "migrations applied" in first.stdout
    tables = {name for (name,) in rows(cli_database, "SELECT name FROM sqlite_master")}
    assert {"operator", "route", "departure", "seat", "staff", "migration"} <= tables
    assert "seat_vehicle_label_key" in tables
    applied = rows(cli_database, "SELECT COUNT(*) FROM migration")
    second = tourline(cli_database, "migrate")
    assert second.returncode == 0, second.stderr
    assert rows(cli_database, "SELECT COUNT(*) FROM migration") == applied


def test_create_operator_with_its_first_admin(cli_database: Path) -> None:
    result = create_operator(
        cli_database,
        "cli-bus",
        "--admin-email",
        "Admin@CLI-Bus.test",
        "--admin-password",
        ADMIN_PASSWORD,
    )
    assert result.returncode == 0, result.stderr
    assert "operator cli-bus created" in result.stdout
    assert "admin admin@cli-bus.test created" in result.stdout
    operators = rows(cli_database, "SELECT id, slug, currency, time_zone, name FROM operator")
    assert len(operators) == 1
    operator_id, slug, currency, time_zone, name = operators[0]
    assert (slug, currency, time_zone) == ("cli-bus", "CNY", "Asia/Shanghai")
    assert json.loads(str(name)) == {"zh_Hans": "命令行巴士", "en": "CLI Bus"}
    staff = rows(cli_database, "SELECT email, role, operator, password_hash FROM staff")
    assert len(staff) == 1
    email, role, staff_operator, password_hash = staff[0]
    assert (email, role) == ("admin@cli-bus.test", "operator_admin")
    assert str(staff_operator) == str(operator_id)
    # The password is stored hashed, never as given.
    assert str(password_hash).startswith("$argon2")
    assert ADMIN_PASSWORD not in str(password_hash)


def test_create_operator_twice_with_the_same_slug_fails(cli_database: Path) -> None:
    assert create_operator(cli_database).returncode == 0
    again = create_operator(cli_database)
    assert again.returncode != 0
    assert "slug_taken" in again.stderr
    assert "Traceback" not in again.stderr
    assert rows(cli_database, "SELECT COUNT(*) FROM operator") == [(1,)]


def test_create_operator_with_invalid_input_is_a_usage_error(cli_database: Path) -> None:
    result = create_operator(cli_database, "Not A Slug")
    assert result.returncode == 2
    assert "slug" in result.stderr
    assert "Traceback" not in result.stderr
    short = create_operator(
        cli_database, "cli-bus", "--admin-email", "a@cli-bus.test", "--admin-password", "short"
    )
    assert short.returncode == 2
    assert "password" in short.stderr


def test_create_operator_admin_needs_a_password(cli_database: Path) -> None:
    result = create_operator(cli_database, "cli-bus", "--admin-email", "a@cli-bus.test")
    assert result.returncode == 2
    assert "TOURLINE_BOOTSTRAP_PASSWORD" in result.stderr


def test_create_platform_admin(cli_database: Path) -> None:
    result = tourline(
        cli_database,
        "create-staff",
        "--role",
        "platform_admin",
        "--email",
        "root@cli.test",
        "--name",
        "Root",
        "--password",
        ADMIN_PASSWORD,
    )
    assert result.returncode == 0, result.stderr
    assert "platform_admin root@cli.test created" in result.stdout
    assert rows(cli_database, "SELECT email, role, operator FROM staff") == [
        ("root@cli.test", "platform_admin", None)
    ]
    again = tourline(
        cli_database,
        "create-staff",
        "--role",
        "platform_admin",
        "--email",
        "ROOT@cli.test",
        "--name",
        "Root again",
        "--password",
        ADMIN_PASSWORD,
    )
    assert again.returncode == 1
    assert "email_taken" in again.stderr
    assert rows(cli_database, "SELECT COUNT(*) FROM staff") == [(1,)]


def test_create_staff_for_an_operator(cli_database: Path) -> None:
    assert create_operator(cli_database).returncode == 0
    result = tourline(
        cli_database,
        "create-staff",
        "--operator",
        "cli-bus",
        "--email",
        "guide@cli-bus.test",
        "--name",
        "Guide",
        "--password",
        ADMIN_PASSWORD,
    )
    assert result.returncode == 0, result.stderr
    assert rows(cli_database, "SELECT email, role FROM staff") == [
        ("guide@cli-bus.test", "operator_staff")
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "platform_admin", "--operator", "cli-bus"], "--operator"),
        (["--role", "operator_admin"], "--operator"),
        (["--role", "operator_staff", "--operator", "nobody"], "nobody"),
        (["--role", "superuser"], "superuser"),
    ],
)
def test_create_staff_rejects_inconsistent_roles(
    cli_database: Path, args: list[str], message: str
) -> None:
    assert create_operator(cli_database).returncode == 0
    result = tourline(
        cli_database,
        "create-staff",
        "--email",
        "x@cli-bus.test",
        "--name",
        "X",
        "--password",
        ADMIN_PASSWORD,
        *args,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert rows(cli_database, "SELECT COUNT(*) FROM staff") == [(0,)]
