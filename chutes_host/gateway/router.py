"""The gateway: routes `Host: {slug}.{domain}` to a ready instance of that chute, streaming both ways."""

from __future__ import annotations

import time
from typing import Any

from chutes.protocol import SEND_WHOLE, WRITE_BODY
from chutes.proxy.connection import drop_cookies_for
from chutes.responses import send_json
from chutes.types import Receive, Scope, Send
from chutes_host.control.auth import FailureLimiter, KeyCache, carries_host_key, check_key, read_key
from chutes_host.gateway.lobby import Lobby
from chutes_host.observability.docs import PRIVATE_DOCS_PATHS, serve_private_docs
from chutes_host.scheduling.supervisor import Supervisor

RETRY_AFTER = b"2"
# Set by the gateway from the real peer; what a client sends in it is never passed on.
FORWARDED_FOR = b"x-forwarded-for"


class Gateway:
    """Plain ASGI middleware: chute hosts go to the proxy, every other request to `app`."""

    state: Any = None  # the HostState, for the server that runs this app
    jobs: Any = None  # the JobRunner, whose running jobs answer at {slug}-job-{short id}.{domain}
    direct = False  # whether the host's server protocol forwards what it can itself (chutes_host.gateway.fastpath)

    def __init__(
        self,
        app: Any,
        *,
        domain: str,
        supervisor: Supervisor,
        keys: KeyCache,
        proxy: Any,
        failures: FailureLimiter | None = None,
    ) -> None:
        self.app = app
        self.suffix = "." + domain.lower()
        self.cookie_domain = domain.lower().encode()  # a chute's cookies for it would reach the dashboard
        self.supervisor = supervisor
        self.keys = keys
        self.proxy = proxy
        self.failures = failures or FailureLimiter()
        self.lobby = Lobby(supervisor)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        hosts = [value for name, value in scope["headers"] if name == b"host"]
        if len(hosts) > 1:
            detail = "the request has more than one Host header; send exactly one"
            return await send_json(send, 400, {"detail": detail}, [(b"connection", b"close")])
        slug = slug_from_host(hosts[0].decode("latin-1") if hosts else None, self.suffix)
        if slug is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1003})
        await self.route_request(slug, scope, receive, send, direct=True)

    async def route_request(
        self, slug: str, scope: Scope, receive: Receive, send: Send, *, direct: bool = False
    ) -> None:
        """Answers 404/401/403/503 itself, or forwards the request to one ready instance.

        `direct` says that `send` is the server's own, so the server's direct writers (scope extensions
        that bypass `send`) may be used; a caller that wraps `send` (the dashboard's Try it filters
        headers) leaves it False, and every part goes through its `send`."""
        extensions = scope.get("extensions", {}) if direct else {}
        job = self.jobs.route(slug) if self.jobs is not None else None
        if job is not None:
            return await self.route_job(job, slug, scope, receive, send, extensions)
        dep = self.supervisor.route(slug)
        # a static page with no chute data: it asks for the key, then sends it in headers; served for
        # unknown slugs too, so that it tells nobody which private chutes exist
        if (dep is None or not dep.spec.public) and await serve_private_docs(scope, send, slug):
            return
        if dep is None:
            return await send_json(send, 404, _no_chute(slug))
        if not dep.spec.public:
            refusal = await self._check_owner(scope, dep.spec.owner_id, slug)
            if refusal is not None:
                return await send_json(send, *refusal)
        # a chute, public or private, never sees its callers' host keys, nor a forged X-Forwarded-For
        scope = dict(scope, headers=forwarded_headers(scope["headers"]))
        target = dep.next_ready()
        if target is None or target.in_flight >= dep.concurrency:  # cold, starting or full: the lobby decides
            target = await self.lobby.admit(slug, dep, target)
            dep = self.supervisor.route(slug) or dep
        if target is None:
            body = {"detail": _not_ready_detail(slug, dep.phase, dep.error), "phase": dep.phase}
            return await send_json(send, 503, body, [(b"retry-after", RETRY_AFTER)])
        self.begin_request(slug, target)
        started, status, latency = time.monotonic(), 0, 0.0

        async def send_counted(message: dict) -> None:
            nonlocal status, latency
            if message["type"] == "http.response.start":
                status, latency = message["status"], time.monotonic() - started
                message = {**message, "headers": drop_cookies_for(message["headers"], self.cookie_domain)}
            await send(message)

        whole = extensions.get(SEND_WHOLE)

        async def send_whole_counted(start: dict, body: dict) -> None:
            nonlocal status, latency
            status, latency = start["status"], time.monotonic() - started
            await whole({**start, "headers": drop_cookies_for(start["headers"], self.cookie_domain)}, body)

        try:
            await self.proxy.forward(
                scope,
                receive,
                send_counted,
                host=target.host,
                port=target.port,
                uds=target.uds,
                write_body=extensions.get(WRITE_BODY),  # send_counted leaves bodies as they are
                send_whole=send_whole_counted if whole is not None else None,
            )
        finally:
            self.end_request(slug, dep, target, status, latency)

    def ready_instance(self, slug: str, method: bytes, target: bytes, headers: list) -> tuple[Any, Any] | None:
        """Returns (deployment, instance) when the request may be forwarded at once, with nothing to wait
        for or refuse: a chute (not a job) that is public or whose owner's key is in the key cache, with a
        ready instance below its concurrency (or a full one, when the lobby would not wait for another).
        Returns None for every other request: `route_request` answers those."""
        if self.jobs is not None and self.jobs.route(slug) is not None:
            return None
        dep = self.supervisor.route(slug)
        if dep is None:
            return None
        if not dep.spec.public:
            if method in (b"GET", b"HEAD") and target.split(b"?", 1)[0].decode("latin-1") in PRIVATE_DOCS_PATHS:
                return None
            key = read_key(headers)
            found = self.keys.cached(key) if key is not None else None
            if found is None or found[0] != dep.spec.owner_id:
                return None
        instance = dep.next_ready()
        if instance is not None and instance.in_flight >= dep.concurrency:
            instance = self.lobby.without_waiting(dep, instance)
        return None if instance is None else (dep, instance)

    def begin_request(self, slug: str, instance: Any) -> None:
        """Counts a request forwarded to `instance` as in flight, until `end_request`."""
        self.supervisor.counters.of(slug).in_flight += 1
        instance.in_flight += 1

    def end_request(self, slug: str, dep: Any, instance: Any, status: int, latency: float) -> None:
        """Counts a forwarded request as done: `status` 0 when no answer started, `latency` to its first byte."""
        counters = self.supervisor.counters.of(slug)
        counters.in_flight -= 1
        counters.record(status, latency)
        instance.in_flight -= 1
        dep.notify()  # a request held in the lobby may take its place

    async def route_job(
        self, job: Any, slug: str, scope: Scope, receive: Receive, send: Send, extensions: dict
    ) -> None:
        """Forwards a request to a running job's ports, for its owner only (others get the 404 of no chute)."""
        refusal = await self._check_owner(scope, job.owner_id, slug)
        if refusal is not None:
            return await send_json(send, *refusal)
        if not job.ports:
            detail = f"job {job.short} declares no ports; see @chute.job(ports=...)"
            return await send_json(send, 404, {"detail": detail})
        handle = job.handle
        if handle is None:
            detail = f"job {job.short} has not started yet ({job.waiting or 'queued'}); retry shortly"
            return await send_json(send, 503, {"detail": detail}, [(b"retry-after", RETRY_AFTER)])
        scope = dict(scope, headers=forwarded_headers(scope["headers"]))

        async def send_guarded(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": drop_cookies_for(message["headers"], self.cookie_domain)}
            await send(message)

        await self.proxy.forward(
            scope,
            receive,
            send_guarded,
            host=handle.host,
            port=handle.port,
            uds=handle.uds,
            write_body=extensions.get(WRITE_BODY),
        )

    async def _check_owner(self, scope: Scope, owner_id: int, slug: str) -> tuple[int, dict, list] | None:
        key = read_key(scope["headers"])
        challenge = [(b"www-authenticate", b"Bearer")]
        if key is None:
            return (
                401,
                {
                    "detail": f"chute {slug!r} is private: send its owner's API key as "
                    "`Authorization: Bearer <key>` or `X-API-Key: <key>`"
                },
                challenge,
            )
        client = scope["client"][0] if scope.get("client") else ""
        found = await check_key(self.keys, self.failures, key, client)  # off the loop: a miss queries the database
        if isinstance(found, float):
            detail = "too many requests with unknown API keys from this address; retry later"
            return 429, {"detail": detail}, [(b"retry-after", str(int(found) + 1).encode())]
        if found is None:
            return 401, {"detail": "unknown or revoked API key"}, challenge
        if found[0] != owner_id:  # the same answer as for no chute: other users' slugs stay unknown
            return 404, _no_chute(slug), []
        return None


def forwarded_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Returns the headers to pass to an instance: without host API keys or X-Forwarded-For (the
    proxy sets that one from the real peer)."""
    return [(n, v) for n, v in headers if n != FORWARDED_FOR and not carries_host_key(n, v)]


def slug_from_host(host: str | None, suffix: str) -> str | None:
    """Takes a Host header and '.domain', and returns the chute slug it names (or None)."""
    if not host:
        return None
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.lower().rstrip(".")
    if not name.endswith(suffix):
        return None
    slug = name[: -len(suffix)]
    return slug if slug and "." not in slug else None


def _no_chute(slug: str) -> dict[str, str]:
    return {"detail": f"no chute {slug!r} on this host; check the name, or deploy it with `chutes deploy`"}


def _not_ready_detail(slug: str, phase: str, error: str | None) -> str:
    if phase == "failed":
        return f"chute {slug!r} failed to start ({error}); see `chutes chutes logs {slug}`"
    if phase == "cold":
        return f"chute {slug!r} is scaled to zero and did not start in time; retry shortly"
    if phase == "pending":
        return f"chute {slug!r} is waiting for GPUs to free up; `chutes chutes get {slug}` says what it needs"
    return f"chute {slug!r} has no ready instance yet (phase: {phase}); retry shortly"
