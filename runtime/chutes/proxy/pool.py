"""Idle keep-alive upstream connections, kept per (host, port); a host starting with / is a Unix socket."""

from __future__ import annotations

import asyncio

from chutes.proxy.connection import UpstreamConnection


class ConnectionPool:
    """Hands out a live idle connection to host:port, or opens a new one.

    A host that is an absolute path names a Unix socket (its port is 0), as the host's instances use.
    """

    def __init__(self, *, connect_timeout: float, read_timeout: float, max_idle: int) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_idle = max_idle
        self._idle: dict[tuple[str, int], list[UpstreamConnection]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def __repr__(self) -> str:
        idle = sum(len(conns) for conns in self._idle.values())
        return f"ConnectionPool(upstreams={len(self._idle)}, idle={idle})"

    def take_idle(self, host: str, port: int) -> UpstreamConnection | None:
        """Returns the most recently used live idle connection to host:port, if any."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # e.g. one Proxy in a chute served by tests that each run a loop
            self._drop_idle()
            self._loop = loop
            self._closed = False
        idle = self._idle.get((host, port))
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    async def connect(self, host: str, port: int) -> UpstreamConnection:
        """Opens a new connection; raises OSError or TimeoutError when that fails."""
        loop = asyncio.get_running_loop()
        factory = lambda: UpstreamConnection(loop, self._read_timeout)  # noqa: E731
        async with asyncio.timeout(self._connect_timeout):
            if host.startswith("/"):
                _, conn = await loop.create_unix_connection(factory, host)
            else:
                _, conn = await loop.create_connection(factory, host, port)
        return conn

    def release(self, conn: UpstreamConnection, host: str, port: int) -> None:
        """Keeps the connection for reuse if its exchange ended cleanly, else closes it."""
        if not conn.finish() or self._closed:
            conn.close()
            return
        idle = self._idle.get((host, port))
        if idle is None:
            idle = self._idle[(host, port)] = []
        elif len(idle) >= self._max_idle:
            idle[:] = [other for other in idle if not other.closed]
            if len(idle) >= self._max_idle:
                conn.close()
                return
        idle.append(conn)

    def close(self) -> None:
        """Closes every idle connection; connections in use close when their exchange ends.

        Pooling starts again when the pool is next used from another event loop.
        """
        self._closed = True
        self._drop_idle()

    def _drop_idle(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                try:
                    conn.close()
                except RuntimeError:  # its event loop is already closed
                    pass
        self._idle.clear()
