"""What bench/availability.py and bench/webhooks.py share: a scratch PostgreSQL database,
a scratch Redis database, `tourline serve` and the hello-world app as real server processes
(uvicorn or granian, N workers), and a lean HTTP/1.1 load generator.

The load generator is a closed loop: `concurrency` keep-alive connections, opened before
the clock starts, each sending its next request as soon as the previous answer is read.
It is a few lines of asyncio streams on uvloop rather than httpx, so that the client is not
the bottleneck of the hello-world baseline (the machine has 2 cores for the server, the
database, the client and everybody else). Each measurement also reports the cores used by
the client, the server's processes, the database's backends (and any other process group
watched, e.g. localstripe) and the whole machine, to show who was busy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
PROTECTED_DATABASES = ("postgres", "test", "template0", "template1")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- PostgreSQL


def database_url(name: str, admin_url: str = ADMIN_URL) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


async def create_database(name: str, admin_url: str = ADMIN_URL) -> None:
    import asyncpg

    assert name not in PROTECTED_DATABASES, name
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(name: str, admin_url: str = ADMIN_URL) -> None:
    import asyncpg

    assert name not in PROTECTED_DATABASES, name
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def open_app_database() -> None:
    """Set this process up as a `tourline` command does (settings, event handlers), and
    open DATABASE_URL: for benchmarks that call the services directly."""
    from app.core import database
    from app.core.settings import get_settings
    from app.wiring import configure_process, wire_domains

    configure_process(get_settings())
    wire_domains()
    await database.open_database(get_settings())


async def load_demo_data() -> str:
    """Migrate DATABASE_URL and load the demo data into it, as `tourline demo` does; the
    summary."""
    from app.core import database
    from app.core.settings import get_settings
    from app.demo.data import load_demo

    await open_app_database()
    try:
        await database.migrate()
        summary = (await load_demo(get_settings())).summary()
        # Fresh tables have no statistics; production has autovacuum's.
        await database.get_engine().run_ddl("ANALYZE")
    finally:
        await database.close_database()
    return summary


# ---------------------------------------------------------------- Redis


async def claim_redis(url: str) -> None:
    """Refuse a Redis database that holds anything: it is emptied at the end."""
    if not url:
        return
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = await client.dbsize()
    finally:
        await client.aclose()
    if keys:
        raise SystemExit(
            f"{url} holds {keys} keys: this bench empties its Redis database at the end; "
            "choose an empty one with --redis-url"
        )


async def empty_redis(url: str) -> None:
    if not url:
        return
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


# ---------------------------------------------------------------- server processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """A server in its own process group (its workers included), logging to a file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int) -> None:
        self.name = name
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = Path(tempfile.mkstemp(prefix=f"tourline-{name}-", suffix=".log")[1])
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    async def wait_ready(
        self, path: str, seconds: float = 120, headers: dict[str, str] | None = None
    ) -> None:
        deadline = time.monotonic() + seconds
        request = build_request("GET", path, self.port, headers=headers)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            connection = Connection("127.0.0.1", self.port)
            try:
                with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
                    status, _body = await asyncio.wait_for(connection.send(request), 2)
                    if status == 200:
                        return
            finally:
                connection.close()
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer {path} in {seconds:.0f}s:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        """CPU time used so far by every live process of the server's group."""
        return group_cpu_seconds(self.process.pid)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL for the whole group if it has not stopped in 40 seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=40)
        with contextlib.suppress(ProcessLookupError):
            # Workers left behind by a crashed master share its process group.
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)
        return self.process.returncode

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def tracebacks(self) -> str:
        text = self.log.read_text(errors="replace")
        start = text.find("Traceback")
        return text[start : start + 4000] if start >= 0 else ""

    def finish(self, problems: list[str]) -> None:
        """Stop; keep the log (and show its tracebacks) only if something went wrong."""
        code = self.stop()
        if code not in (0, None):
            problems.append(f"{self.name} exited with {code}")
        if problems and self.tracebacks():
            print(f"\n{self.name} log ({self.log}):\n{self.tracebacks()}", file=sys.stderr)
        elif problems:
            print(f"{self.name} log kept: {self.log}", file=sys.stderr)
        else:
            self.log.unlink(missing_ok=True)


# Requests per minute per client IP on the public API: every request is still counted
# (in Redis, as in production), but one load generator on one address never reaches it.
UNREACHABLE_RATE_LIMIT = 1_000_000_000


def app_env(database: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of the app server: development settings, this database and Redis."""
    return {
        "DATABASE_URL": database,
        "TOURLINE_ENV": "development",
        "REDIS_URL": redis_url,
        "TOURLINE_PUBLIC_RATE_LIMIT": str(UNREACHABLE_RATE_LIMIT),
        **extra,
    }


def describe_code() -> str:
    """The commit served, and whether the working tree differs from it (figures depend on
    uncommitted changes too)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "app", "workers", "pyproject.toml"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.splitlines()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "code: unknown (no git)"
    dirty = f" + uncommitted changes in {len(changed)} app files" if changed else ""
    return f"code: {commit}{dirty}"


def app_server(server: str, workers: int, env: dict[str, str]) -> ServerProcess:
    """`tourline serve --server S --workers N` (migrations first, as in production)."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("tourline")), "serve",
        "--server", server, "--workers", str(workers), "--port", str(port),
    ]  # fmt: skip
    return ServerProcess(f"tourline-{server}", command, {**os.environ, **env}, port)


def hello_server(server: str, workers: int) -> ServerProcess:
    """bench/hello_app.py on the same server with the same workers and options."""
    port = free_port()
    command = [
        sys.executable, str(BENCH / "hello_app.py"),
        "--server", server, "--workers", str(workers), "--port", str(port),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(BENCH)}
    return ServerProcess(f"hello-{server}", command, env, port)


def _processes() -> list[tuple[bytes, list[bytes]]]:
    """(command line, stat fields after the command) of every process we may read."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except OSError:
            continue
        found.append((command, fields))
    return found


def _cpu(fields: list[bytes]) -> float:
    # After the command: state, ppid, pgrp, ... utime (12th), stime (13th).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def group_cpu_seconds(group: int) -> float:
    """CPU time used so far by the live processes of a process group."""
    return sum(_cpu(fields) for _command, fields in _processes() if int(fields[2]) == group)


def database_cpu_seconds(name: str) -> float:
    """CPU time used so far by the live PostgreSQL backends connected to database `name`
    (their title reads `postgres: user database host(port) state`)."""
    marker = f" {name} ".encode()
    return sum(
        _cpu(fields)
        for command, fields in _processes()
        if command.startswith(b"postgres: ") and marker in command
    )


def machine_busy_seconds() -> float:
    """CPU seconds spent by the whole machine (all cores), not idle or waiting."""
    with open("/proc/stat", "rb") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


CpuMeter = Callable[[], float]


def cpu_meters(
    server: ServerProcess, database: str, **others: ServerProcess
) -> dict[str, CpuMeter]:
    """Who to watch during a measurement: this client, the server's processes, its
    database's backends, any other process group, and the whole machine."""
    meters: dict[str, CpuMeter] = {
        "client": self_cpu_seconds,
        "server": server.cpu_seconds,
        "db": lambda: database_cpu_seconds(database),
    }
    for name, process in others.items():
        meters[name] = process.cpu_seconds
    meters["machine"] = machine_busy_seconds
    return meters


# ---------------------------------------------------------------- the load generator


def build_request(
    method: str,
    path: str,
    port: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept-Language: en"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One keep-alive HTTP/1.1 connection; answers with Content-Length or chunked."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            await self.open()
        reader, writer = self.reader, self.writer
        assert reader is not None
        assert writer is not None
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = 0, False, False
        for line in head[:-4].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append((await reader.readexactly(size + 2))[:-2])
                if size == 0:
                    break
            body = b"".join(parts)
        else:
            body = await reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Load:
    """One measurement: every answer's latency and status (and outcome, if inspected)."""

    label: str
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    warmup_outcomes: Counter[str] = field(default_factory=Counter)  # not in the figures
    errors: list[str] = field(default_factory=list)
    body_bytes: int = 0
    # Cores used during the measurement by each watched party (see cpu_meters).
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)


RequestMaker = Callable[[int], bytes]
Inspector = Callable[[int, bytes], str]


async def run_load(
    label: str,
    server: ServerProcess,
    make_request: RequestMaker,
    *,
    concurrency: int,
    seconds: float | None = None,
    requests: int | None = None,
    warmup: float = 0.0,
    inspect: Inspector | None = None,
    meters: dict[str, CpuMeter] | None = None,
) -> Load:
    """Closed-loop load: `concurrency` connections for `seconds` (after `warmup` seconds
    whose answers are not counted), or until `requests` requests have been sent.
    `make_request(i)` builds the i-th request; `inspect(status, body)` names its outcome;
    `meters` are read before and after, to give the cores each party used."""
    assert (seconds is None) != (requests is None)
    connections = [Connection("127.0.0.1", server.port) for _ in range(concurrency)]
    result = Load(label)
    counter = iter(range(sys.maxsize if requests is None else requests))
    recording = False
    stop_at = 0.0

    async def client(connection: Connection) -> None:
        for index in counter:
            if seconds is not None and time.perf_counter() >= stop_at:
                return
            request = make_request(index)
            started = time.perf_counter()
            try:
                status, body = await connection.send(request)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                connection.close()
                status, body = 0, b""
                if len(result.errors) < 5:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
            latency = time.perf_counter() - started
            if not recording:
                if inspect is not None and status:
                    result.warmup_outcomes[inspect(status, body)] += 1
                continue
            result.latencies.append(latency)
            result.statuses[status] += 1
            result.body_bytes = len(body) or result.body_bytes
            if inspect is not None and status:
                result.outcomes[inspect(status, body)] += 1
            if not 200 <= status < 300 and status and len(result.errors) < 5:
                result.errors.append(f"{status}: {body[:300]!r}")

    try:
        # Open every connection before the clock starts, one at a time and a moment apart:
        # opened all at once, the first server process to wake may accept every one of them
        # and leave the others idle for the whole round.
        for connection in connections:
            await connection.open()
            await asyncio.sleep(0.005)
        if warmup and seconds is not None:
            stop_at = time.perf_counter() + warmup
            await asyncio.gather(*(client(c) for c in connections))
        recording = True
        meters = meters or {}
        before = {name: meter() for name, meter in meters.items()}
        started = time.perf_counter()
        stop_at = started + (seconds or 0.0)
        await asyncio.gather(*(client(c) for c in connections))
        result.elapsed = time.perf_counter() - started
        result.cpu = {
            name: (meter() - before[name]) / result.elapsed for name, meter in meters.items()
        }
    finally:
        for connection in connections:
            connection.close()
    return result


# ---------------------------------------------------------------- report


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cpu_columns(loads: list[Load]) -> str:
    """`name cores` for each watched party, medians over the rounds."""
    names = list(loads[0].cpu) if loads else []
    return " ".join(f"{name} {median([load.cpu[name] for load in loads]):.2f}" for name in names)


def spread(values: list[float], digits: int = 0) -> str:
    """`median (min-max)` of one figure over the rounds."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


# ---------------------------------------------------------------- command line


def load_parser(description: str | None, database: str, per: str) -> argparse.ArgumentParser:
    """The options every load benchmark takes (server, workers, durations, database, Redis)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    parser.add_argument("--workers", type=int, default=2, help="processes of each server")
    parser.add_argument("--seconds", type=float, default=5.0, help=f"per {per} and round")
    parser.add_argument("--warmup", type=float, default=1.0, help="uncounted, before each")
    parser.add_argument("--concurrency", type=int, default=64, help="keep-alive connections")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default=database)
    parser.add_argument(
        "--redis-url", default=REDIS_URL, help="emptied at the end; '' for no Redis"
    )
    return parser


def run_load_benchmark(
    parser: argparse.ArgumentParser, main: Callable[[argparse.Namespace], Awaitable[int]]
) -> None:
    """Parse, refuse to drop a database that is not ours, run `main` on uvloop, exit."""
    arguments = parser.parse_args()
    if arguments.database in PROTECTED_DATABASES:
        parser.error(f"refusing to drop {arguments.database!r}")
    try:
        import uvloop

        code = uvloop.run(main(arguments))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted (servers stopped, database dropped)", file=sys.stderr)
        code = 130
    sys.exit(code)


# ---------------------------------------------------------------- a private PostgreSQL


class PrivatePostgres:
    """A PostgreSQL server of the bench's own: a fresh cluster (initdb) in a temporary
    folder on a free loopback port, with pg_stat_statements loaded so that the statements
    each side sends can be counted, without reconfiguring the shared server. `stop()`
    shuts it down and deletes the folder. As root, it runs as the `postgres` user."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise SystemExit("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = found[-1].parent
        self.folder = Path(tempfile.mkdtemp(prefix="tourline-bench-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            import shutil

            shutil.chown(self.folder, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as, *command], check=True, capture_output=True, text=True)

    def start(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c shared_preload_libraries=pg_stat_statements -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.folder / "server.log"), "-w", "start",
        )  # fmt: skip

    def version(self) -> str:
        return subprocess.run(
            [str(self.bin / "postgres"), "--version"], capture_output=True, text=True
        ).stdout.strip()

    def stop(self) -> None:
        import shutil

        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


def group_rss_bytes(group: int) -> dict[int, int]:
    """Resident memory of each live process of a process group, by pid."""
    found: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            if int(fields[2]) != group:
                continue
            with open(f"/proc/{entry.name}/statm", "rb") as statm:
                found[int(entry.name)] = int(statm.read().split()[1]) * page
        except OSError:
            continue
    return found


def describe_machine() -> str:
    """nproc, CPU model and memory of this machine, for a results note."""
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        memory = int(meminfo.readline().split()[1]) // 1024 // 1024
    return f"{os.cpu_count()} cores ({model}), {memory} GiB RAM"
