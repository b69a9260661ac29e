"""The built-in routes of every chute: /_ping, /_ready, /_metrics, /openapi.json, /docs and its files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic_core import to_json

from chutes.responses import send_body, send_json
from chutes.swagger import ASSET_TYPES, ASSETS_PATH, send_asset
from chutes.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from chutes.chute import Chute

Route = ASGIApp
READ_METHODS = ("GET", "HEAD")
METRICS_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


def builtin_routes(chute: Chute) -> dict[str, Route]:
    """Takes a chute, and returns its built-in routes by path."""
    cache: dict[str, bytes] = {}

    async def ping(scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, {"status": "ok"})

    async def ready(scope: Scope, receive: Receive, send: Send) -> None:
        if chute.ready:
            await send_json(send, 200, {"ready": True, "phase": chute.phase})
        else:
            await send_json(send, 503, {"ready": False, "phase": chute.phase}, [(b"retry-after", b"1")])

    async def metrics(scope: Scope, receive: Receive, send: Send) -> None:
        text = chute._metrics.render(chute._in_flight, chute.ready)
        await send_body(send, 200, text.encode(), METRICS_TYPE)

    async def openapi(scope: Scope, receive: Receive, send: Send) -> None:
        if "openapi" not in cache:
            from chutes.openapi import build_openapi

            cache["openapi"] = to_json(build_openapi(chute))
        await send_body(send, 200, cache["openapi"], b"application/json")

    async def docs(scope: Scope, receive: Receive, send: Send) -> None:
        from chutes.openapi import docs_html

        await send_body(send, 200, docs_html(chute), b"text/html; charset=utf-8")

    def docs_asset(name: str) -> Route:
        async def asset(scope: Scope, receive: Receive, send: Send) -> None:
            await send_asset(send, name)

        return asset

    def read_only(route: Route) -> Route:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["method"] not in READ_METHODS:
                detail = f"{scope['path']} takes GET, not {scope['method']}"
                await send_json(send, 405, {"detail": detail}, [(b"allow", b"GET, HEAD")])
                return
            await route(scope, receive, send)

        return guarded

    routes = {
        "/_ping": ping,
        "/_ready": ready,
        "/_metrics": metrics,
        "/openapi.json": openapi,
        "/docs": docs,
        **{f"{ASSETS_PATH}{name}": docs_asset(name) for name in ASSET_TYPES},
    }
    return {path: read_only(route) for path, route in routes.items()}
