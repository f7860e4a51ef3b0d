"""A bare Litestar hello world: the baseline of bench/availability.py and bench/webhooks.py.

Run: .venv/bin/python bench/hello_app.py --server uvicorn|granian --workers 2 --port 8001
It is served with exactly the server options `tourline serve` uses (app/cli.py): same
server, same worker count, uvicorn's access log at level info, granian's defaults; only
the application differs, so a ratio against it is the cost of the application.

- GET /hello: a small JSON object;
- POST /hello: reads the whole body and answers a small JSON object (as a webhook would).
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from litestar import Litestar, Request, get, post

GRACEFUL_SHUTDOWN_SECONDS = 30


@get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@post("/hello", status_code=200)
async def hello_post(request: Request[Any, Any, Any]) -> dict[str, Any]:
    body = await request.body()
    return {"received": True, "bytes": len(body)}


def create_app() -> Litestar:
    return Litestar(route_handlers=[hello, hello_post], debug=False)


def serve(server: str, host: str, port: int, workers: int) -> None:
    """As `tourline serve` does (app/cli.py), with this module's app."""
    if server == "granian":
        from granian import Granian
        from granian.constants import Interfaces

        Granian(
            "hello_app:create_app",
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            workers=workers,
            factory=True,
            workers_kill_timeout=GRACEFUL_SHUTDOWN_SECONDS,
        ).serve()
        return
    import uvicorn

    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(0))
    uvicorn.run(
        "hello_app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        log_level="info",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    arguments = parser.parse_args()
    serve(arguments.server, arguments.host, arguments.port, arguments.workers)
