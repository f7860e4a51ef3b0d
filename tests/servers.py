"""Real API server processes for tests that need several (shared limits across processes).

They serve the test worker's database (already migrated by the session: `create_app`
does not migrate) with the environment given.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
from aiohttp import web

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_web_endpoint(
    routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]],
) -> tuple[web.AppRunner, str]:
    """A small HTTP server (an agency's webhook receiver) on a free loopback port, with a
    POST handler per path; its runner (`await runner.cleanup()` stops it) and base URL."""
    application = web.Application()
    for path, handler in routes.items():
        application.router.add_post(path, handler)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()  # port 0: the system picks one
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


def _log_text(log: Path) -> str:
    return log.read_text(errors="replace")


async def _wait_for_health(
    http: httpx.AsyncClient, base: str, process: asyncio.subprocess.Process, log: Path
) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.returncode is not None:
            raise AssertionError(f"server {base} exited:\n{_log_text(log)}")
        try:
            if (await http.get(f"{base}/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"server {base} not healthy:\n{_log_text(log)}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def api_servers(count: int, env: dict[str, str], logs: Path) -> AsyncIterator[list[str]]:
    """Start `count` uvicorn processes, wait until each is healthy, yield their base URLs,
    and stop them all (killing any that will not stop) whatever happens."""
    processes: list[tuple[str, asyncio.subprocess.Process, Path]] = []
    try:
        for _ in range(count):
            port = free_port()
            log = logs / f"server-{port}.log"
            with log.open("wb") as sink:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "uvicorn", "app.asgi:create_app", "--factory",
                    "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                    cwd=PROJECT_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                )  # fmt: skip
            processes.append((f"http://127.0.0.1:{port}", process, log))
        async with httpx.AsyncClient(timeout=10) as http:
            for base, process, log in processes:
                await _wait_for_health(http, base, process, log)
        yield [base for base, _process, _log in processes]
    finally:
        for _base, process, _log in processes:
            if process.returncode is None:
                process.terminate()
        for _base, process, _log in processes:
            try:
                await asyncio.wait_for(process.wait(), timeout=10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def inside_one_minute() -> None:
    """Limits count per minute of the servers' real clock: start a burst well inside one."""
    left = 60 - time.time() % 60
    if left < 3:
        await asyncio.sleep(left + 0.2)
