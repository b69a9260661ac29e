"""The gateway's direct path: requests forwarded from the server protocol's own callbacks, without ASGI.

Most requests to a chute need nothing the gateway would wait for: the chute is public or the key is in
the key cache, an instance is ready with room, and an idle connection to it is pooled. For those,
`GatewayProtocol` sends the request upstream from the parser's callbacks, and writes the response to
the client from the upstream connection's callbacks: no task, no scope, no ASGI messages. Every other
request (a job, an unknown or private chute without a cached key, no ready instance, a body over
64 KiB or chunked, HEAD, `Expect: 100-continue`, HTTP/1.0, pipelining) goes to the ASGI gateway as
before, which answers it the same way, more slowly. The semantics are the proxy's: the same request
head (`build_request_head`), the same response headers, errors and status counts. A request to a
streaming cord of an instance that offers stream handoff is not relayed at all: once it is read, its
client connection goes to the instance with it (`DirectExchange.hand_off`, chutes_host.gateway.handoff).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from chutes.protocol import BoundedHttpToolsProtocol
from chutes.proxy.connection import UpstreamConnection, drop_cookies_for
from chutes.proxy.errors import UpstreamError, translate_error
from chutes.proxy.head import build_request_head
from chutes.proxy.proxy import error_response
from chutes_host.gateway.handoff import HandoffChannel, end_connection
from chutes_host.gateway.router import Gateway, forwarded_headers, slug_from_host

# Request bodies up to this size are read whole, then sent with the head; larger ones stream (ASGI path).
MAX_DIRECT_BODY = 64 * 1024
# A direct request's body must be whole within this many seconds, plus one for each DIRECT_BODY_MIN_RATE
# bytes it declares (10 s plus 1 s a KiB: 74 s at most), however steadily it trickles.
DIRECT_BODY_GRACE = 10.0
DIRECT_BODY_MIN_RATE = 1024
CHUNKED = b"transfer-encoding: chunked\r\n"


class GatewayProtocol(BoundedHttpToolsProtocol):
    """The host's server protocol: takes the requests the gateway can forward at once (see module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app = self.app
        self.forwarded: ProxyHeadersMiddleware | None = None
        if isinstance(app, ProxyHeadersMiddleware):  # --forwarded-allow-ips: the client as the trusted proxy says
            trusted = self.config.forwarded_allow_ips
            self.forwarded = proxy_headers(tuple(trusted) if isinstance(trusted, list) else trusted)
            app = app.app
        direct = isinstance(app, Gateway) and app.direct and self.limit_concurrency is None
        self.gateway: Gateway | None = app if direct else None
        self.direct: DirectExchange | None = None

    def handle_directly(self) -> bool:
        gateway = self.gateway
        if gateway is None or self.expect_100_continue or (self.cycle is not None and not self.cycle.response_complete):
            return False
        parser = self.parser
        url = self.url
        if parser.get_http_version() != "1.1" or parser.should_upgrade() or url[:1] != b"/":
            return False
        host = None
        length = 0
        for name, value in self.headers:
            if name == b"host":
                if host is not None:
                    return False  # the ASGI gateway answers 400
                host = value
            elif name == b"content-length":
                if not value.isdigit() or int(value) > MAX_DIRECT_BODY:
                    return False
                length = int(value)
            elif name == b"transfer-encoding":
                return False
        slug = slug_from_host(host.decode("latin-1"), gateway.suffix) if host is not None else None
        if slug is None:
            return False
        method = parser.get_method()
        if method == b"HEAD":
            return False
        found = gateway.ready_instance(slug, method, url, self.headers)
        if found is None:
            return False
        dep, instance = found
        upstream = (instance.uds, 0) if instance.uds is not None else (instance.host, instance.port)
        handoff = instance.handoff
        if handoff is not None and (
            handoff.closed
            or (method, url.split(b"?", 1)[0]) not in dep.spec.stream_routes
            or self.transport.get_extra_info("sslcontext") is not None
        ):
            handoff = None
        gateway.begin_request(slug, instance)
        gateway.supervisor.counters.direct += 1
        scope = {
            "method": method.decode("ascii"),
            "raw_path": url,
            "headers": forwarded_headers(self.headers),
            "client": self.client,
            "scheme": self.scheme,
        }
        if self.forwarded is not None:
            apply_proxy_headers(self.forwarded, scope, self.headers)
        head = build_request_head(scope, host=instance.host, port=instance.port, path=None, extra_headers=None)
        framing = b"" if head.content_length is None else b"content-length: %d\r\n" % length
        self.cycle = self.direct = DirectExchange(
            self, gateway, slug, dep, instance, upstream, head.render(framing), parser.should_keep_alive(), handoff
        )
        if length:  # it holds an instance's slot while it comes: a trickle must not hold it for long
            self.body_deadline = self.loop.time() + DIRECT_BODY_GRACE + length / DIRECT_BODY_MIN_RATE
        return True

    def on_message_begin(self) -> None:
        direct = self.direct
        if direct is not None and not direct.response_complete:
            direct.pipelined = True  # a request behind one being answered: that one is never handed over
        super().on_message_begin()

    def shutdown(self) -> None:
        direct = self.direct
        if direct is not None and direct.handed_off:  # the host is stopping: its streams end now
            return direct.handoff_done(0, 0.0)
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        direct = self.direct
        super().connection_lost(exc)
        if direct is not None and direct is not self.cycle:  # a pipelined request took its place as the cycle
            direct.disconnected = True
            direct.set()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.direct is not None:
            self.direct.relay()


@functools.cache
def proxy_headers(trusted: str | tuple[str, ...]) -> ProxyHeadersMiddleware:
    """Returns uvicorn's proxy-headers middleware for these trusted proxies, around an app that does nothing."""
    return ProxyHeadersMiddleware(_nothing, trusted_hosts=trusted if isinstance(trusted, str) else list(trusted))


async def _nothing(scope: dict, receive: Any, send: Any) -> None:
    return None


def apply_proxy_headers(middleware: ProxyHeadersMiddleware, scope: dict, headers: list) -> None:
    """Sets the scope's client and scheme from the request's `headers` as uvicorn's middleware does for the
    ASGI gateway, by running it (around an app that does nothing, it never suspends)."""
    probe = {"type": "http", "client": scope["client"], "scheme": scope["scheme"], "headers": headers}
    call = middleware(probe, None, None)
    try:
        call.send(None)
    except StopIteration:
        scope.update(client=probe["client"], scheme=probe["scheme"])
        return
    call.close()
    raise RuntimeError("uvicorn's proxy-headers middleware suspended; it cannot run on the direct path")


class DirectExchange:
    """One request forwarded by `GatewayProtocol`, standing in for uvicorn's request-response cycle.

    uvicorn's protocol appends the body to `body`, clears `more_body` when the request is complete, sets
    `disconnected` when the client goes, and calls `message_event.set()` after each: `set` moves on."""

    __slots__ = (
        "protocol",
        "gateway",
        "slug",
        "dep",
        "instance",
        "upstream",
        "conn",
        "request",
        "keep_alive",
        "body",
        "more_body",
        "disconnected",
        "response_started",
        "response_complete",
        "status",
        "started",
        "latency",
        "chunked",
        "sent",
        "retried",
        "task",
        "handoff",
        "handed_off",
        "pipelined",
    )

    def __init__(
        self,
        protocol: GatewayProtocol,
        gateway: Gateway,
        slug: str,
        dep: Any,
        instance: Any,
        upstream: tuple[str, int],
        request: bytes,
        keep_alive: bool,
        handoff: HandoffChannel | None = None,
    ) -> None:
        self.protocol = protocol
        self.gateway = gateway
        self.slug = slug
        self.dep = dep
        self.instance = instance
        self.upstream = upstream
        self.handoff = handoff  # where the connection goes once the request is in (else relayed)
        self.handed_off = False
        self.pipelined = False
        self.conn: UpstreamConnection | None = None
        self.request = request
        self.keep_alive = keep_alive
        self.body = bytearray()
        self.more_body = True
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.status = 0
        self.started = time.monotonic()
        self.latency = 0.0
        self.chunked = False
        self.sent = False
        self.retried = False
        self.task: Any = None
        if handoff is None:
            self.take_connection()  # a new one is opened while the body arrives

    @property
    def message_event(self) -> DirectExchange:
        return self

    def set(self) -> None:
        """Called by uvicorn's protocol after a body part, the end of the request, or the client leaving."""
        if self.response_complete or self.handed_off:  # a handed-over stream ends when the instance says
            return
        if self.disconnected:
            return self.finish(close=True)
        if self.more_body or self.sent:
            return
        if self.handoff is not None:
            self.sent = True
            self.protocol.loop.call_soon(self.hand_off)  # once the rest of this read is parsed: pipelining?
        elif self.conn is not None:
            self.send_request(self.conn)

    def hand_off(self) -> None:
        """Gives the client connection, with the request, to the instance (see chutes_host.gateway.handoff); or,
        when that cannot be, relays the request as any other."""
        channel, self.handoff = self.handoff, None
        if self.response_complete:
            return
        protocol = self.protocol
        transport = protocol.transport
        sock = transport.get_extra_info("socket")
        if not self.pipelined and not transport.is_closing() and sock is not None:
            if channel.send(self, self.whole_request(), sock.fileno()):
                protocol.flow.pause_reading()  # what the client sends now is the instance's to read
                self.handed_off = True
                self.gateway.supervisor.counters.handoffs += 1
                return
        self.sent = False
        self.take_connection()
        if self.conn is not None:
            self.send_request(self.conn)

    def take_connection(self) -> None:
        """Takes an idle pooled connection to the instance, or starts opening a new one (which sends the
        request once it is open and the body is in)."""
        self.conn = self.gateway.proxy.pool.take_idle(*self.upstream)
        if self.conn is None:
            self.task = self.protocol.loop.create_task(self.connect())

    def whole_request(self) -> bytes:
        return self.request + self.body if self.body else self.request

    def handoff_done(self, status: int, latency: float) -> None:
        """The instance has ended the stream handed over to it (status 0: it answered nothing), or the
        host is stopping: the connection is shut down for good, the request counted."""
        if self.response_complete:
            return
        self.status, self.latency = status, latency
        self.response_started = status != 0
        self.finish(close=True)

    def send_request(self, conn: UpstreamConnection) -> None:
        self.sent = True
        conn.begin(head_request=False)
        conn.listener = self.relay
        try:
            conn.write(self.whole_request())
        except OSError as exc:
            return self.failed(exc)
        conn.start_timer()

    def relay(self) -> None:
        """Called by the upstream connection on progress: writes what can be written to the client."""
        conn = self.conn
        if conn is None or self.response_complete:
            return
        if conn.error is not None:
            return self.failed(conn.error)
        if not self.response_started:
            if not conn.headers_done:
                return
            self.status, self.latency = conn.status, time.monotonic() - self.started
            self.response_started = True
            self.chunked = not conn.has_length and conn.status not in (204, 304)
            headers = drop_cookies_for(conn.headers, self.gateway.cookie_domain)
            head = self.render_head(conn.status, headers, CHUNKED if self.chunked else b"")
            if conn.complete:  # e.g. a JSON answer: head and body in one write
                return self.write_last(head + self.frame(conn.take()) if conn.chunks else head)
            body = conn.take() if conn.chunks else b""
            self.write(head + self.frame(body) if body else head)
            conn.sink = self.write_part
            return
        if self.protocol.flow.write_paused:
            return  # resume_writing calls again
        if conn.chunks:
            body = self.frame(conn.take())
            if conn.complete:
                return self.write_last(body)
            self.write(body)
            conn.sink = self.write_part
        elif conn.complete:
            self.write_last(b"")

    def render_head(self, status: int, headers: list[tuple[bytes, bytes]], framing: bytes) -> bytes:
        """Returns a response head for the client as uvicorn's `send` renders one: its Date and Server, then
        `headers`, the `framing` header line, and `connection: close` when the connection ends after it."""
        parts = [STATUS_LINE[status]]
        for name, value in (*self.protocol.server_state.default_headers, *headers):
            parts += (name, b": ", value, b"\r\n")
        parts.append(framing)
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def frame(self, body: bytes) -> bytes:
        return b"%x\r\n%b\r\n" % (len(body), body) if self.chunked and body else body

    def write_part(self, body: bytes) -> bool:
        """The upstream connection's sink: writes a streamed body part now, unless the client is slow."""
        if self.protocol.flow.write_paused or self.response_complete:
            return False
        if body:
            self.write(self.frame(body))
        return True

    def write(self, data: bytes) -> None:
        transport = self.protocol.transport
        if not transport.is_closing():
            transport.write(data)

    def write_last(self, data: bytes) -> None:
        self.write(data + b"0\r\n\r\n" if self.chunked else data)
        self.finish(close=not self.keep_alive)

    def failed(self, exc: BaseException) -> None:
        """Answers an upstream failure: a retry on a new connection when a pooled one was stale, an error
        response before the response started, else a closed client connection (never a truncated success)."""
        conn = self.conn
        stale = conn is not None and conn.reused and not conn.received_any and not self.retried
        if stale and isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
            self.retried = True
            conn.listener = None
            conn.close()
            self.conn = None
            self.task = self.protocol.loop.create_task(self.connect())
            return
        if self.response_started:
            return self.finish(close=True)
        self.answer_error(exc, connecting=False)

    async def connect(self) -> None:
        """Opens a new connection to the instance, and sends the request on it once the body is in."""
        try:
            conn = await self.gateway.proxy.pool.connect(*self.upstream)
        except (OSError, TimeoutError) as exc:
            self.task = None
            return self.answer_error(exc, connecting=True)
        self.task = None
        if self.response_complete:
            return conn.close()
        self.conn = conn
        if not self.more_body:
            self.send_request(conn)

    def answer_error(self, exc: BaseException, *, connecting: bool) -> None:
        """Answers what the ASGI gateway's proxy answers for the failure: 502, 503 with Retry-After, or 504."""
        proxy = self.gateway.proxy
        timeout = proxy.connect_timeout if connecting else proxy.read_timeout
        error = translate_error(exc, *self.upstream, connecting=connecting, timeout=timeout)
        if not isinstance(error, UpstreamError):  # every failure of an upstream connection is one; 502 else
            error = UpstreamError(str(error) or type(error).__name__)
        status, headers, body = error_response(error, retry_after=proxy.unreachable_retry_after)
        self.status, self.latency = status, time.monotonic() - self.started
        self.response_started = True
        self.write(self.render_head(status, headers, b"") + body)
        self.finish(close=not self.keep_alive)

    def finish(self, *, close: bool) -> None:
        """Ends the exchange once: the upstream connection back to the pool (or closed), the request
        counted, and the client connection ready for its next request (or closed)."""
        if self.response_complete:
            return
        self.response_complete = True
        conn, self.conn = self.conn, None
        if conn is not None:
            if not conn.complete:
                conn.close()
            self.gateway.proxy.pool.release(conn, *self.upstream)
        if self.task is not None:  # the client left while a new upstream connection was being opened
            self.task.cancel()
        self.gateway.end_request(self.slug, self.dep, self.instance, self.status, self.latency)
        protocol = self.protocol
        if protocol.direct is self:
            protocol.direct = None
        if self.handed_off:
            return end_connection(protocol.transport)
        if self.disconnected:  # the protocol saw the client go, or timed its body out (408): the connection is its own
            return
        if close or protocol.transport.is_closing():
            protocol.transport.close()
        else:
            protocol.on_response_complete()
