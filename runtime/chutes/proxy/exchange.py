"""`Exchange`: one request and its response over a pooled upstream connection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from chutes.proxy.connection import UpstreamConnection
from chutes.proxy.errors import ClientDisconnected
from chutes.proxy.pool import ConnectionPool
from chutes.types import Receive, Send

# A response still streaming after this long gets a task that watches for the client leaving;
# short responses finish first and never pay for one.
WATCH_AFTER = 0.02


class Exchange:
    """One request/response over a pooled connection, retried once on a stale one."""

    __slots__ = ("pool", "host", "port", "head_request", "conn", "connecting", "body_pending")

    def __init__(self, pool: ConnectionPool, host: str, port: int, head_request: bool) -> None:
        self.pool = pool
        self.host = host
        self.port = port
        self.head_request = head_request
        self.conn: UpstreamConnection | None = None
        self.connecting = False
        self.body_pending = False

    async def open(
        self, request: bytes, body: bytes | None, first: bytes | None, receive: Receive, *, chunked: bool = False
    ) -> UpstreamConnection:
        """Sends the request and waits for the response headers.

        `body` goes out after the head as it is; `first` set means a streamed body whose first part it is,
        sent with chunked framing when `chunked`.
        """
        self.conn = conn = self.pool.take_idle(self.host, self.port)
        if conn is None:
            self.conn = conn = await self._connect()
        try:
            await self._send_request(conn, request, body, first, receive, chunked)
        except OSError as exc:
            stale = conn.reused and not conn.received_any and first is None
            if isinstance(exc, TimeoutError) or not stale:
                raise
            conn.close()
            self.conn = conn = await self._connect()
            await self._send_request(conn, request, body, first, receive, chunked)
        return conn

    async def _connect(self) -> UpstreamConnection:
        self.connecting = True
        conn = await self.pool.connect(self.host, self.port)
        self.connecting = False
        return conn

    async def _send_request(
        self,
        conn: UpstreamConnection,
        request: bytes,
        body: bytes | None,
        first: bytes | None,
        receive: Receive,
        chunked: bool,
    ) -> None:
        conn.begin(head_request=self.head_request)
        conn.write(request)
        if body is not None:
            conn.write(body)
        elif first is not None:
            await self._stream_request_body(conn, first, receive, chunked=chunked)
        conn.start_timer()
        while not conn.headers_done:
            if conn.error is not None:
                raise conn.error
            await conn.wait()

    async def _stream_request_body(
        self, conn: UpstreamConnection, data: bytes, receive: Receive, *, chunked: bool
    ) -> None:
        more = self.body_pending = True
        while True:
            if data:
                conn.write(b"".join((b"%x\r\n" % len(data), data, b"\r\n")) if chunked else data)
            if not more:
                self.body_pending = False
                if chunked:
                    conn.write(b"0\r\n\r\n")
                return
            if conn.write_paused:
                await conn.drain()
            if conn.error is not None:
                raise conn.error
            if conn.headers_done:
                conn.spoiled = True  # answered before the whole body was sent: not reusable
                return
            message = await receive()
            if message["type"] == "http.disconnect":
                self.body_pending = False
                raise ClientDisconnected()
            data = message.get("body", b"")
            more = message.get("more_body", False)

    async def relay(
        self, conn: UpstreamConnection, receive: Receive, send: Send, write_body: Callable[[bytes], bool] | None = None
    ) -> None:
        """Sends each body chunk of `conn` (the connection `open` returned) to the client as it arrives,
        then ends the response.

        `write_body`, when the server offers one (and nothing between it and here changes the body),
        writes parts synchronously: a streamed part then goes from the upstream's read callback
        straight to the client, without a wake-up of this coroutine."""
        watch = None
        data = b""
        try:
            while True:
                if conn.chunks:
                    data = conn.take()
                    if conn.complete:
                        break
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                    data = b""
                elif conn.complete:
                    break
                elif conn.error is not None:
                    raise conn.error
                else:
                    if watch is None:
                        watch = DisconnectWatch(receive, conn)
                    conn.sink = write_body
                    await conn.wait()
                    conn.sink = None
        finally:
            conn.sink = None
            if watch is not None:
                watch.cancel()
        await send({"type": "http.response.body", "body": data, "more_body": False})

    def abort(self) -> None:
        if self.conn is not None:
            self.conn.close()


class DisconnectWatch:
    """Closes the upstream connection as soon as the client disconnects, once the response is
    still streaming after WATCH_AFTER seconds."""

    __slots__ = ("receive", "conn", "handle", "task")

    def __init__(self, receive: Receive, conn: UpstreamConnection) -> None:
        self.receive = receive
        self.conn = conn
        self.task: asyncio.Task[None] | None = None
        self.handle = conn.loop.call_later(WATCH_AFTER, self._start)

    def _start(self) -> None:
        self.task = self.conn.loop.create_task(self._watch())

    async def _watch(self) -> None:
        try:
            while (await self.receive())["type"] != "http.disconnect":
                pass
        except Exception:  # a server that cannot report disconnects: nothing to watch
            return
        self.conn.fail(ClientDisconnected())

    def cancel(self) -> None:
        self.handle.cancel()
        if self.task is not None:
            self.task.cancel()
