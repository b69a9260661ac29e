"""What the bare domain says about the host: where its API, docs and chutes are, and the docs redirects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from chutes_host.config import HostConfig

API_PREFIX = "/api/v1"


def create_index_router() -> APIRouter:
    """Returns the redirects from the bare domain's /docs and /openapi.json to the control API's."""
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    def docs() -> RedirectResponse:
        return RedirectResponse(f"{API_PREFIX}/docs", status_code=307)

    @router.get("/openapi.json")
    def openapi() -> RedirectResponse:
        return RedirectResponse(f"{API_PREFIX}/openapi.json", status_code=307)

    return router


def describe_host(config: HostConfig, base_url: str) -> dict[str, Any]:
    """Takes the URL the host was reached at, and returns where its API, docs and chutes are."""
    from chutes import __version__

    api = base_url + API_PREFIX
    return {
        "name": "chutes host",
        "version": __version__,
        "api": api,
        "docs": f"{api}/docs",
        "openapi": f"{api}/openapi.json",
        "chute_url": config.chute_url("{username}-{chute}"),
        "how_to_deploy": [
            "pip install chutes",
            f"chutes config set api_url {base_url}",
            "chutes config set api_key YOUR_KEY",
            "chutes init my-chute --username YOUR_USERNAME && cd my-chute",
            "chutes deploy my_chute:chute",
        ],
    }


def wants_json(accept: str) -> bool:
    """Tells whether an Accept header asks for JSON rather than a page (browsers send text/html)."""
    accept = accept.lower()
    return "application/json" in accept and "text/html" not in accept
