"""The gateway: routes `Host: {slug}.{domain}` to a ready instance of that chute, streaming both ways."""

from __future__ import annotations

from typing import Any

from chutes.responses import send_json
from chutes_host.auth import KeyCache, read_key
from chutes_host.docs import serve_private_docs
from chutes_host.lobby import Lobby
from chutes_host.supervisor import Supervisor

Scope = dict[str, Any]
AUTH_HEADERS = (b"authorization", b"x-api-key")
RETRY_AFTER = b"2"


class Gateway:
    """Plain ASGI middleware: chute hosts go to the proxy, every other request to `app`."""

    def __init__(self, app: Any, *, domain: str, supervisor: Supervisor, keys: KeyCache, proxy: Any) -> None:
        self.app = app
        self.suffix = "." + domain.lower()
        self.supervisor = supervisor
        self.keys = keys
        self.proxy = proxy
        self.lobby = Lobby(supervisor)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        slug = slug_from_host(_header(scope, b"host"), self.suffix)
        if slug is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1003})
        await self.route_request(slug, scope, receive, send)

    async def route_request(self, slug: str, scope: Scope, receive: Any, send: Any) -> None:
        """Answers 404/401/403/503 itself, or forwards the request to one ready instance."""
        dep = self.supervisor.route(slug)
        if dep is None:
            return await send_json(
                send,
                404,
                {"detail": f"no chute {slug!r} on this host; check the name, or deploy it with `chutes deploy`"},
            )
        if not dep.spec.public and await serve_private_docs(scope, send, slug):
            return  # a static page with no chute data: it asks for the key, then sends it in headers
        if not dep.spec.public:
            refusal = await self._check_owner(scope, dep.spec.owner_id, slug)
            if refusal is not None:
                return await send_json(send, *refusal)
        headers = without_host_keys(scope["headers"])
        if headers is not scope["headers"]:  # a chute, public or private, never sees its callers' host keys
            scope = dict(scope, headers=headers)
        target = dep.next_ready()
        if target is None or target.in_flight >= dep.concurrency:  # cold, starting or full: the lobby decides
            target = await self.lobby.admit(slug, dep, target)
            dep = self.supervisor.route(slug) or dep
        if target is None:
            body = {"detail": _not_ready_detail(slug, dep.phase, dep.error), "phase": dep.phase}
            return await send_json(send, 503, body, [(b"retry-after", RETRY_AFTER)])
        counters = self.supervisor.counters.of(slug)
        counters.in_flight += 1
        counters.requests += 1
        target.in_flight += 1
        try:
            await self.proxy.forward(scope, receive, send, host=target.host, port=target.port, uds=target.uds)
        finally:
            counters.in_flight -= 1
            target.in_flight -= 1
            dep.notify()  # a request held in the lobby may take its place

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
        found = await self.keys.lookup_off_loop(key)  # an unknown key would otherwise block every chute
        if found is None:
            return 401, {"detail": "unknown or revoked API key"}, challenge
        if found[0] != owner_id:
            return 403, {"detail": f"chute {slug!r} is private and this key's user does not own it"}, []
        return None


def without_host_keys(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Returns the headers without those carrying a host API key (the same list when there are none)."""
    if not any(name in AUTH_HEADERS for name, _ in headers):
        return headers
    return [(n, v) for n, v in headers if n not in AUTH_HEADERS or not v.rsplit(b" ", 1)[-1].startswith(b"cpk_")]


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


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _not_ready_detail(slug: str, phase: str, error: str | None) -> str:
    if phase == "failed":
        return f"chute {slug!r} failed to start ({error}); see `chutes chutes logs {slug}`"
    if phase == "cold":
        return f"chute {slug!r} is scaled to zero and did not start in time; retry shortly"
    if phase == "pending":
        return f"chute {slug!r} is waiting for GPUs to free up; `chutes chutes get {slug}` says what it needs"
    return f"chute {slug!r} has no ready instance yet (phase: {phase}); retry shortly"
