"""The host's bare domain for people: `/` says where things are; `/docs` and `/openapi.json` lead to the API's.

A dashboard can later take `/` by replacing `create_web_router` in the control API.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from chutes_host.config import HostConfig

API_PREFIX = "/api/v1"
INDEX_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>chutes host</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; }}
code, pre {{ background: #f3f3f3; border-radius: 4px; padding: 0.1rem 0.3rem; }}
pre {{ padding: 0.8rem; overflow-x: auto; }}
</style>
</head>
<body>
<h1>chutes host</h1>
<p>Version {version}. This host runs chutes: Python apps whose cords are served over HTTP.</p>
<ul>
<li>Control API: <code>{api}</code> (needs an API key)</li>
<li>API docs: <a href="{docs}">{docs}</a> (click <em>Authorize</em> and give your key to try calls)</li>
<li>OpenAPI document: <a href="{openapi}">{openapi}</a></li>
<li>Each chute is served at <code>{chute_url}</code></li>
</ul>
<h2>Deploy a chute here</h2>
<pre>{deploy}</pre>
<p>No key yet? The host's admin makes one with <code>chutes host users add NAME</code>.</p>
</body>
</html>
"""


def create_web_router(config: HostConfig) -> APIRouter:
    """Returns the routes of the bare domain: the index and the redirects to the API's docs."""
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_model=None)
    def index(request: Request) -> HTMLResponse | JSONResponse:
        info = describe_host(config, str(request.base_url).rstrip("/"))
        if wants_json(request.headers.get("accept", "")):
            return JSONResponse(info)
        fields = {k: html.escape(v) for k, v in info.items() if isinstance(v, str)}
        return HTMLResponse(INDEX_PAGE.format(**fields, deploy=html.escape("\n".join(info["how_to_deploy"]))))

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
