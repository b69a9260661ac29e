"""One keep-alive HTTP/1.1 connection to an upstream, read with httptools' response parser."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import httptools

from chutes.proxy.head import HOP_BY_HOP

# The serving ASGI server writes its own Date and Server; two Date fields would be invalid (as nginx does).
NOT_RELAYED = HOP_BY_HOP | {b"date", b"server"}

SET_COOKIE = b"set-cookie"

# Bytes of response body held for a slow client before the upstream socket stops being read.
HIGH_WATER = 256 * 1024
# A response with a content-length up to this is relayed once complete: one wake-up, not two,
# when the upstream writes head and body separately (uvicorn does).
HOLD_LIMIT = 64 * 1024
# A response's status line and headers beyond this are refused (502): one chute's endless head
# must not hold the proxy's loop or memory.
MAX_HEAD_BYTES = 64 * 1024


def drop_cookies_for(headers: list[tuple[bytes, bytes]], domain: bytes) -> list[tuple[bytes, bytes]]:
    """Returns response `headers` without the Set-Cookie fields whose Domain attribute covers `domain`
    (lowercase), i.e. names it or a parent of it. For a gateway whose upstreams answer on subdomains
    of its own `domain`: such a cookie would reach the gateway's own pages (e.g. a sign-in)."""
    if not any(name == SET_COOKIE for name, _ in headers):
        return headers
    return [(name, value) for name, value in headers if name != SET_COOKIE or not cookie_covers(value, domain)]


def cookie_covers(set_cookie: bytes, domain: bytes) -> bool:
    """Tells whether any Domain attribute of a Set-Cookie value names `domain` or a parent of it."""
    for attribute in set_cookie.split(b";")[1:]:
        name, _, value = attribute.partition(b"=")
        if name.strip().lower() != b"domain":
            continue
        value = value.strip().lower().strip(b".")
        if value and (value == domain or domain.endswith(b"." + value)):
            return True
    return False


class UpstreamConnection(asyncio.Protocol):
    """Parses one response at a time; the forwarding coroutine waits on it and takes the body."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float) -> None:
        self.loop = loop
        self._read_timeout = read_timeout
        self._parser = httptools.HttpResponseParser(self)
        self._parser_stale = False
        self._transport: asyncio.Transport  # set by connection_made, before the pool hands the connection out
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_activity = 0.0
        self._write_paused = False
        self._active = False
        self.closed = False
        self.reused = False
        # Set while a response body streams to a client that can take parts synchronously: each part
        # is written from here, and the forwarding coroutine is woken only for what the sink refuses.
        self.sink: Callable[[bytes], bool] | None = None
        # Set by a forwarder that is not a coroutine (the gateway's direct path): called where a waiting
        # coroutine would be woken, i.e. on progress of the parser, a failure, or the connection's end.
        self.listener: Callable[[], None] | None = None
        self._reset()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("active" if self._active else "idle")
        return f"UpstreamConnection({state}, reused={self.reused})"

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.chunks: list[bytes] = []
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.received_any = False
        self.spoiled = False
        self._buffered = 0
        self._head_bytes = 0
        self._reading_paused = False
        self._interim = False
        self._head_request = False
        self._until_eof = False
        self._chunked = False
        self._has_length = False
        self._hold = False
        self._timing = False
        self._connection_tokens: bytes | None = None
        self.sink = None
        self.listener = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if TYPE_CHECKING:  # a stream connection's transport (create_connection, create_unix_connection)
            assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if not self._active:
            self.close()  # bytes nobody asked for: the connection cannot be trusted
            return
        self.received_any = True
        self._last_activity = self.loop.time()
        try:
            if self.headers_done or self._head_bytes + len(data) <= MAX_HEAD_BYTES:
                self._head_bytes += len(data)
                self._parser.feed_data(data)
            else:
                room = MAX_HEAD_BYTES - self._head_bytes
                self._head_bytes = MAX_HEAD_BYTES
                self._parser.feed_data(data[:room])  # the head may end inside the allowed part
                if not self.headers_done:
                    raise httptools.HttpParserError(f"response head larger than {MAX_HEAD_BYTES} bytes")
                self._parser.feed_data(data[room:])
        except httptools.HttpParserError as exc:
            self.fail(exc)
            return
        if self._hold and not self.complete:
            return
        if self.sink is not None and not self.chunks and not self.complete:
            return  # the sink took every part
        self._wake()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._active and not self.complete and self.error is None:
            if self._until_eof:
                self.complete = True
            else:
                self.error = exc or ConnectionResetError(0, "connection closed by upstream")
        self._wake()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in NOT_RELAYED or name.startswith(b"proxy-"):
            if name == b"connection":
                self._connection_tokens = value
            elif name == b"transfer-encoding":
                self._chunked = True
            return
        if name == b"content-length":
            self._has_length = True
            self._hold = int(value) <= HOLD_LIMIT
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            self._interim = True  # 100 Continue, 103 Early Hints: the real response follows
            self.headers = []
            return
        self.status = status
        self.headers_done = True
        tokens = self._connection_tokens
        if tokens is not None:
            self._drop_connection_listed(tokens)
        if self._head_request:
            self._parser_stale = True
            self._finish_message()
            return
        if not self._chunked and status not in (204, 304):
            self._until_eof = not self._has_length

    def on_body(self, body: bytes) -> None:
        sink = self.sink
        if sink is not None and not self.chunks and sink(body):
            return
        self.chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if not self._head_request:
            self._finish_message()

    def _finish_message(self) -> None:
        self.complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self._until_eof = False
        self._timing = False

    def _drop_connection_listed(self, tokens: bytes) -> None:
        listed = {token.strip().lower() for token in tokens.split(b",")}
        self.headers = [(name, value) for name, value in self.headers if name not in listed]
        if b"close" in listed:
            self.keep_alive = False

    # used by the forwarding coroutine

    def begin(self, *, head_request: bool) -> None:
        """Prepares the connection for the next request."""
        if self._parser_stale:
            self._parser = httptools.HttpResponseParser(self)
            self._parser_stale = False
        self._reset()
        self._head_request = head_request
        self._active = True

    def write(self, data: bytes) -> None:
        if self.closed:  # uvloop raises RuntimeError on a closed transport; asyncio only logs
            raise self.error or ConnectionResetError(0, "connection closed by upstream")
        self._transport.write(data)

    @property
    def has_length(self) -> bool:
        """Whether the response's body is framed by a content-length (relayed as it is)."""
        return self._has_length

    @property
    def write_paused(self) -> bool:
        return self._write_paused

    async def drain(self) -> None:
        """Waits until the upstream socket accepts more request bytes."""
        if self._write_paused and not self.closed:
            self._drain_waiter = self.loop.create_future()
            await self._drain_waiter
            self._drain_waiter = None
        if self.closed and self.error is None:
            self.error = ConnectionResetError(0, "connection closed by upstream")

    def start_timer(self) -> None:
        """Starts counting read_timeout from now; any received byte restarts the count."""
        self._last_activity = self.loop.time()
        self._timing = True
        if self._timer is None:  # an armed timer re-arms itself for what is left: one per timeout, not per request
            self._timer = self.loop.call_later(self._read_timeout, self._check_idle)

    def _check_idle(self) -> None:
        self._timer = None
        if not self._timing or self.complete or self.error is not None:
            return
        idle = self.loop.time() - self._last_activity
        if self._reading_paused or idle < self._read_timeout:
            remaining = self._read_timeout - (0.0 if self._reading_paused else idle)
            self._timer = self.loop.call_later(remaining, self._check_idle)
            return
        self.fail(TimeoutError())

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def wait(self) -> None:
        """Waits until the parser made progress, failed, or the connection ended."""
        self._waiter = self.loop.create_future()
        await self._waiter

    def _wake(self) -> None:
        if self.listener is not None:
            return self.listener()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def take(self) -> bytes:
        """Returns the body bytes received so far, and resumes reading if it was paused."""
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.chunks = []
        self._buffered = 0
        if self._reading_paused:
            self._reading_paused = False
            self._last_activity = self.loop.time()
            self._transport.resume_reading()
        return data

    def fail(self, exc: BaseException) -> None:
        """Records why the exchange failed, closes the socket and wakes the waiter."""
        if self.error is None:
            self.error = exc
        self.close()
        self._wake()

    def finish(self) -> bool:
        """Ends the exchange; returns whether the connection may carry another request."""
        self._active = self._timing = False
        self.listener = self.sink = None
        return self.complete and self.keep_alive and not (self.closed or self.spoiled or self.chunks)

    def close(self) -> None:
        self._active = False
        self._cancel_timer()
        if not self.closed:
            self.closed = True
            transport = getattr(self, "_transport", None)  # None if the connection never came
            if transport is not None:
                transport.close()
