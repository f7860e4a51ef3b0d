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
from typing import Any

from litestar import Litestar, Request, get, post

from app.cli import run_asgi_server


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
    """As `tourline serve` does, with this module's app."""
    run_asgi_server("hello_app:create_app", server=server, host=host, port=port, workers=workers)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    arguments = parser.parse_args()
    serve(arguments.server, arguments.host, arguments.port, arguments.workers)
