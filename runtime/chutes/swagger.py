"""Swagger UI pages whose script, style and icon are served by the same server, never by a CDN."""

from __future__ import annotations

import functools
import html
import json
from pathlib import Path
from typing import Any

from chutes.responses import send_body, send_json
from chutes.types import Send

SWAGGER_UI_VERSION = "5.35.0"
ASSETS_DIR = Path(__file__).with_name("swagger_ui")
ASSETS_PATH = "/_docs/"
ASSET_TYPES = {
    "swagger-ui-bundle.js": b"text/javascript; charset=utf-8",
    "swagger-ui.css": b"text/css; charset=utf-8",
    "favicon-32x32.png": b"image/png",
}
CACHE_HEADERS = [(b"cache-control", b"public, max-age=86400")]
HTML_TYPE = b"text/html; charset=utf-8"
UI_OPTIONS = {
    "dom_id": "#swagger-ui",
    "layout": "BaseLayout",
    "deepLinking": True,
    "showExtensions": True,
    "showCommonExtensions": True,
    "validatorUrl": None,  # the default posts the spec's URL to an outside validator
}

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" type="text/css" href="{assets}swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}favicon-32x32.png">
<title>{title}</title>
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}swagger-ui-bundle.js"></script>
<script>
{script}
</script>
</body>
</html>
"""


def swagger_html(*, title: str, openapi_url: str, assets: str = ASSETS_PATH) -> bytes:
    """Returns a Swagger UI page that loads `openapi_url`, with its files under `assets`."""
    options = {"url": openapi_url, **UI_OPTIONS}
    script = (
        f"const options = {script_json(options)};\n"
        "options.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];\n"
        "window.ui = SwaggerUIBundle(options);"
    )
    return render_page(title=title, script=script, assets=assets)


def render_page(*, title: str, script: str, assets: str = ASSETS_PATH) -> bytes:
    """Returns the page around a Swagger UI start-up `script`."""
    return PAGE.format(title=html.escape(title), assets=html.escape(assets), script=script).encode()


def script_json(value: Any) -> str:
    """Returns `value` as JSON that is safe inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@functools.cache
def read_asset(name: str) -> bytes | None:
    """Returns the bytes of one Swagger UI file, or None when `name` is not one of them."""
    if name not in ASSET_TYPES:
        return None
    return (ASSETS_DIR / name).read_bytes()


async def send_asset(send: Send, name: str) -> None:
    """Sends one Swagger UI file as an ASGI response (404 for an unknown name)."""
    body = read_asset(name)
    if body is None:
        await send_json(send, 404, {"detail": f"no file {name!r} here; the docs page is at /docs"})
        return
    await send_body(send, 200, body, ASSET_TYPES[name], CACHE_HEADERS)
