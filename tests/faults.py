"""A TCP proxy that the fault tests put between the app (or a worker) and PostgreSQL or
Redis, to take the service away the ways a network does:

- `refuse()`: nothing listens any more (new connections are refused) and every open
  connection is cut, as when the server is stopped or restarted;
- `cut()`: every open connection is reset, new ones are let through (a server restart
  that came back at once, a failover);
- `blackhole()`: connections are accepted and nothing flows either way, on new and open
  connections alike (a dead host, a partition): the client hangs until its own timeout;
- `restore()`: traffic flows again (held bytes of a black hole are delivered late, as TCP
  would after a partition heals).

It runs in the test's event loop; `start()` returns the port to point the client at.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._connections: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        await self._close_listener()
        self.cut()
        self._flowing.set()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def url_host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ---------------------------------------------------------------- faults

    async def refuse(self) -> None:
        """Stop listening (new connections are refused) and cut every open one."""
        await self._close_listener()
        self.cut()

    def cut(self) -> None:
        """Reset every open connection, both sides."""
        for client, upstream in list(self._connections):
            _reset(client)
            if upstream is not None:
                _reset(upstream)
        self._connections.clear()

    def blackhole(self) -> None:
        """Accept, but let nothing through either way, until `restore()`."""
        self._flowing.clear()

    async def restore(self) -> None:
        """Listen again (on the same port) and let traffic flow."""
        self._flowing.set()
        if self._server is None:
            await self.start()

    # ---------------------------------------------------------------- plumbing

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=1)
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        entry: tuple[asyncio.StreamWriter, asyncio.StreamWriter | None] = (writer, None)
        self._connections.add(entry)
        try:
            # A black hole answers nothing, not even the upstream's greeting.
            await self._flowing.wait()
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except (OSError, asyncio.CancelledError):
            self._connections.discard(entry)
            _reset(writer)
            return
        if entry not in self._connections:  # cut while connecting
            _reset(upstream_writer)
            return
        self._connections.discard(entry)
        entry = (writer, upstream_writer)
        self._connections.add(entry)
        pumps = [
            asyncio.ensure_future(self._pump(reader, upstream_writer)),
            asyncio.ensure_future(self._pump(upstream_reader, writer)),
        ]
        for pump in pumps:
            self._tasks.add(pump)
            pump.add_done_callback(self._tasks.discard)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        self._connections.discard(entry)
        _close(writer)
        _close(upstream_writer)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError, asyncio.IncompleteReadError):
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a crashed peer or a dropped route would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close(writer)


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


@contextlib.asynccontextmanager
async def tcp_proxy(target_host: str, target_port: int) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(target_host, target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
