"""uvicorn's httptools protocol with bounded requests: a head size cap (431), and time boxes (408) for
the head and for a body that stalls; and a synchronous writer of streamed body parts, for proxies.

uvicorn bounds heads only on its h11 protocol, and bodies not at all; with httptools one client
could send a header of any size, or a byte every few seconds, and hold the server's loop or a
connection forever. Timing the body here costs nothing for a request that arrives in one read.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any, Protocol

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT = 10.0
BODY_IDLE_TIMEOUT = 30.0  # a body that sends nothing for this long (while it is being read) gets 408
# After a refusal the rest of what the client sends is read and dropped for a moment before the
# socket closes: closing with unread bytes would reset the connection and lose the answer.
LINGER_SECONDS = 1.0
LINGER_BYTES = 8 * 1024 * 1024
# The ASGI scope extension through which a proxy may write a streamed response's body parts at once,
# from the callback that received them, instead of waking its task for each (see write_body).
WRITE_BODY = "chutes.write_body"
# The scope extension through which an app sends a whole response (its start and its one body message)
# in one socket write instead of uvicorn's two (see send_whole).
SEND_WHOLE = "chutes.send_whole"


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Answers 431 to a request line plus headers over MAX_HEAD_BYTES; 408 when a head is not
    complete HEAD_TIMEOUT seconds after its first part came (a new connection that sends nothing
    is closed then); and 408 when a body being read sends nothing for BODY_IDLE_TIMEOUT seconds
    (the app then sees a disconnect). Idle keep-alive connections are uvicorn's timeout_keep_alive."""

    max_head_bytes = MAX_HEAD_BYTES
    head_timeout = HEAD_TIMEOUT
    body_timeout = BODY_IDLE_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes: int | None = 0  # None while a request's body or response is under way
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        # When the body being read must be whole (loop time), for a request a subclass takes itself
        # (handle_directly); None: only the idle timeout applies.
        self.body_deadline: float | None = None
        self._lingering: int | None = None  # bytes dropped since a refusal

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            self._lingering += len(data)
            if self._lingering > LINGER_BYTES:
                self.transport.close()
            return
        self._feed(data)
        if self._head_bytes:  # part of a head came: it has head_timeout from now to be complete
            if self._head_timer is None and not self.transport.is_closing():
                self._arm_head_timer()
            return
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_complete and self._head_bytes is None:
            self._arm_body_timer()  # the body is still coming: time the wait for its next part
        elif self._body_timer is not None:
            self._cancel_body_timer()

    def _feed(self, data: bytes) -> None:
        if self._head_bytes is None:
            return super().data_received(data)
        room = self.max_head_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            return super().data_received(data)
        self._head_bytes = self.max_head_bytes
        if room:
            super().data_received(data[:room])  # the head may end inside the allowed part
        if self.transport.is_closing():
            return None
        if self._head_bytes is not None:
            return self._refuse(431, f"request line and headers are larger than {self.max_head_bytes} bytes")
        return self._feed(data[room:])

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self.body_deadline = None
        self._cancel_head_timer()
        if self.handle_directly():
            return
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not previous and cycle is not None:  # a request, not an upgrade
            extensions = cycle.scope.setdefault("extensions", {})
            # ASGI's typing (uvicorn's) says each extension is a dict; these two are chutes' own callables
            extensions[WRITE_BODY] = partial(write_body, cycle)  # pyright: ignore[reportArgumentType]
            extensions[SEND_WHOLE] = partial(send_whole, cycle)  # pyright: ignore[reportArgumentType]

    def handle_directly(self) -> bool:
        """Takes the request whose head just completed without the ASGI app, and returns True; or
        returns False (as here) to hand it to the app. A subclass that takes it sets `self.cycle` to an
        object that does the cycle's part for uvicorn (`body`, `more_body`, `response_complete`,
        `disconnected`, `keep_alive`, `response_started`, `message_event.set()`), and calls
        `on_response_complete` or closes the transport when its response is complete."""
        return False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes = 0

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _arm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
        delay, late = self.body_timeout, False
        if self.body_deadline is not None and self.body_deadline - self.loop.time() < delay:
            delay, late = max(0.0, self.body_deadline - self.loop.time()), True
        self._body_timer = self.loop.call_later(delay, self._body_timed_out, late)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self, late: bool = False) -> None:
        """The body stalled (nothing came for body_timeout), or, when `late`, is past its deadline."""
        self._body_timer = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None or not cycle.more_body or cycle.response_complete:
            return
        if self.flow.read_paused and not late:  # the app is not reading: not the client's stall
            return self._arm_body_timer()
        started = cycle.response_started
        cycle.disconnected = True  # the app's receive now reports a disconnect, and its sends are dropped
        cycle.message_event.set()
        if started:
            self.transport.close()
        elif late:
            self._refuse(408, "the request body came too slowly: it was not whole in time")
        else:
            self._refuse(408, f"the request body stalled: nothing arrived for {self.body_timeout:g} s")

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._head_bytes is None:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # still answering the previous request (idle keep-alive is uvicorn's to time)
        if self._head_bytes:
            self._refuse(408, f"request head not received within {self.head_timeout:g} s")
        else:
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        body = message.encode("ascii")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self._cancel_head_timer()
        self._cancel_body_timer()
        self._lingering = 0
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def write_body(cycle: RequestResponseCycle, body: bytes) -> bool:
    """Writes one part of the cycle's started, streamed response body now, as its `send` would; returns
    False (having written nothing) when the response cannot take it now and `send` must be awaited."""
    if (
        not cycle.response_started
        or cycle.response_complete
        or cycle.disconnected
        or cycle.flow.write_paused
        or cycle.scope["method"] == "HEAD"
    ):
        return False
    if not body:
        return True
    if cycle.chunked_encoding:
        cycle.transport.write(b"%x\r\n%b\r\n" % (len(body), body))
    elif len(body) <= cycle.expected_content_length:
        cycle.expected_content_length -= len(body)
        cycle.transport.write(body)
    else:
        return False  # longer than its content-length: `send` raises
    return True


class _Cycle(Protocol):
    """What send_whole uses of uvicorn's RequestResponseCycle (a private type)."""

    transport: asyncio.Transport

    async def send(self, message: Any) -> None: ...


class _Collected(asyncio.Transport):
    """Stands in for a cycle's transport while send_whole renders a response: keeps what is written
    (its `send` only writes and closes)."""

    __slots__ = ("parts", "closed")

    def __init__(self) -> None:
        self.parts: list[bytes | bytearray | memoryview] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.closed = True


async def send_whole(cycle: _Cycle, start: dict, body: dict) -> None:
    """Sends `start` and the final `body` message through the cycle's own `send` (its checks, framing
    and keep-alive rules), writing what they render to the socket at once."""
    transport, collected = cycle.transport, _Collected()
    cycle.transport = collected
    try:
        await cycle.send(start)
        await cycle.send(body)
    finally:
        cycle.transport = transport
        if collected.parts and not transport.is_closing():
            transport.write(b"".join(collected.parts))
        if collected.closed:
            transport.close()


def server_options(protocol: type[BoundedHttpToolsProtocol] = BoundedHttpToolsProtocol) -> dict[str, Any]:
    """Returns the uvicorn Config options that bound request heads: `protocol` with httptools, else h11."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return {"http": "h11", "h11_max_incomplete_event_size": MAX_HEAD_BYTES}
    return {"http": protocol}
