"""`tourline serve --demo` end to end: a real server process on a fresh SQLite file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.core.settings import PROJECT_ROOT

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_environment(database: Path) -> dict[str, str]:
    """This process's environment, minus the test database and services, plus a fresh file."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "TOURLINE_BOOTSTRAP_PASSWORD")
    }
    env["DATABASE_URL"] = f"sqlite:///{database}"
    env["TOURLINE_ENV"] = "development"
    return env


def wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"serve exited early with {process.returncode}:\n{log.read_text()}"
            )
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"serve not healthy after {START_TIMEOUT}s:\n{log.read_text()}")


def test_serve_with_demo_data_answers_and_stops_gracefully(tmp_path: Path) -> None:
    database = tmp_path / "serve.sqlite3"
    log = tmp_path / "serve.log"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--demo", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=serve_environment(database),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(process, base_url, log)
        with httpx.Client(base_url=base_url, timeout=10) as client:
            health = client.get("/health")
            assert health.json() == {"status": "ok"}

            routes = client.get("/api/v1/routes")
            assert routes.status_code == 200, routes.text
            listed = {item["slug"]: item for item in routes.json()["items"]}
            assert "y359-henan-xinjiang" in listed
            assert "大河之南号" in listed["y359-henan-xinjiang"]["name"]
            assert {"caizhai-picking", "huatian-flower-fields", "tianyuan-farm-day"} <= set(listed)
            assert {listed[slug]["kind"] for slug in listed} == {"train", "bus"}

            ready = client.get("/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"database": "ok"}

            schema = client.get("/schema/openapi.json")
            assert schema.status_code == 200, schema.text
            assert schema.json()["info"]["title"] == "Tourline API"
            assert "/api/v1/routes" in schema.json()["paths"]

        # The demo went into the file given in DATABASE_URL, not the test database.
        assert database.exists()
        assert "Tourline on http://127.0.0.1:" in log.read_text()

        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"serve still running {STOP_TIMEOUT}s after SIGTERM:\n{log.read_text()}"
            ) from None
        output_text = log.read_text()
        assert returncode == 0, f"exit code {returncode}:\n{output_text}"
        assert "Traceback" not in output_text
        assert "Application shutdown complete" in output_text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
