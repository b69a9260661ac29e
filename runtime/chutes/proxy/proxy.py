"""`Proxy`: forwards one ASGI HTTP request to an upstream and streams the response back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httptools

from chutes.proxy.connection import UpstreamConnection
from chutes.proxy.errors import ClientDisconnected, UpstreamError, translate_error
from chutes.proxy.head import build_request_head
from chutes.proxy.pool import ConnectionPool

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# Bodies up to this size go out in the same write as the head.
COALESCE_LIMIT = 64 * 1024
# A response still streaming after this long gets a task that watches for the client leaving;
# short responses finish first and never pay for one.
WATCH_AFTER = 0.02
FOREIGN_ERRORS = (OSError, httptools.HttpParserError, UpstreamError)


class Proxy:
    """Forwards ASGI HTTP requests to an upstream HTTP/1.1 server, streaming both ways.

    proxy = Proxy(read_timeout=60)
    await proxy.forward(scope, receive, send, host="127.0.0.1", port=8000, path="/v1/chat")
    await proxy.aclose()
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        max_idle_per_upstream: int = 64,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._pool = ConnectionPool(
            connect_timeout=connect_timeout, read_timeout=read_timeout, max_idle=max_idle_per_upstream
        )

    def __repr__(self) -> str:
        return (
            f"Proxy(connect_timeout={self.connect_timeout:g}, read_timeout={self.read_timeout:g}, pool={self._pool!r})"
        )

    async def forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        host: str,
        port: int,
        path: str | None = None,
        body: bytes | None = None,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Sends the request to host:port, and relays the response (or a 502/504) to `send`."""
        head = build_request_head(scope, host=host, port=port, path=path, extra_headers=extra_headers)
        first = None
        if body is None and head.has_body:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if message.get("more_body", False):
                first = message.get("body", b"")
            else:
                body = message.get("body", b"")
        if first is not None:
            length = head.content_length
            request = head.render(
                b"content-length: " + length + b"\r\n" if length else b"transfer-encoding: chunked\r\n"
            )
        elif body is not None:
            request = head.render(b"content-length: %d\r\n" % len(body))
            if len(body) <= COALESCE_LIMIT:
                request, body = request + body, None
        else:
            request = head.render(b"")
        exchange = _Exchange(self._pool, host, port, scope["method"] == "HEAD")
        started = False
        try:
            conn = await exchange.open(request, body, first, receive)
            await send({"type": "http.response.start", "status": conn.status, "headers": conn.headers})
            started = True
            await exchange.relay(receive, send)
        except BaseException as exc:
            exchange.abort()
            if not isinstance(exc, FOREIGN_ERRORS):
                if isinstance(exc, ClientDisconnected):
                    return
                raise
            timeout = self.connect_timeout if exchange.connecting else self.read_timeout
            error = translate_error(exc, host, port, connecting=exchange.connecting, timeout=timeout)
            if started or not isinstance(error, UpstreamError):
                raise error from exc  # the server drops the client connection: never a truncated success
            if exchange.body_pending:
                await drain_request_body(receive)  # else the client's unsent body resets the socket
            await send_error(send, error)
            return
        self._pool.release(conn, host, port)

    async def aclose(self) -> None:
        """Closes the pooled idle connections."""
        self._pool.close()


class _Exchange:
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
        self, request: bytes, body: bytes | None, first: bytes | None, receive: Receive
    ) -> UpstreamConnection:
        """Sends the request and waits for the response headers; `first` set means a streamed body."""
        self.conn = conn = self.pool.take_idle(self.host, self.port)
        if conn is None:
            self.conn = conn = await self._connect()
        try:
            await self._send_request(conn, request, body, first, receive)
        except OSError as exc:
            stale = conn.reused and not conn.received_any and first is None
            if isinstance(exc, TimeoutError) or not stale:
                raise
            conn.close()
            self.conn = conn = await self._connect()
            await self._send_request(conn, request, body, first, receive)
        return conn

    async def _connect(self) -> UpstreamConnection:
        self.connecting = True
        conn = await self.pool.connect(self.host, self.port)
        self.connecting = False
        return conn

    async def _send_request(
        self, conn: UpstreamConnection, request: bytes, body: bytes | None, first: bytes | None, receive: Receive
    ) -> None:
        conn.begin(head_request=self.head_request)
        conn.write(request)
        if body is not None:
            conn.write(body)
        elif first is not None:
            await self._stream_request_body(conn, first, receive, chunked=b"chunked\r\n" in request)
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

    async def relay(self, receive: Receive, send: Send) -> None:
        """Sends each body chunk to the client as it arrives, then ends the response."""
        conn = self.conn
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
                    await conn.wait()
        finally:
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


async def drain_request_body(receive: Receive) -> None:
    """Reads and discards the rest of the client's request body."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return


async def send_error(send: Send, exc: UpstreamError) -> None:
    """Sends the JSON error response for an upstream failure."""
    body = json.dumps({"detail": exc.detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode("ascii"))]
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
