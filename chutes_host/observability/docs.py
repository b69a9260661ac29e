"""The host's Swagger pages: the control API's docs, and the docs page of a private chute that asks for a key first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from chutes.responses import send_body
from chutes.swagger import (
    ASSET_TYPES,
    ASSETS_PATH,
    CACHE_HEADERS,
    HTML_TYPE,
    UI_OPTIONS,
    read_asset,
    render_page,
    script_json,
    send_asset,
    swagger_html,
)

KEY_SCHEME = "HostKey"
PRIVATE_DOCS_PATHS = frozenset({"/docs", *(ASSETS_PATH + name for name in ASSET_TYPES)})

# Swagger UI starts on a placeholder document (no chute data) whose only action is Authorize. The key
# given there stays in this page's memory: it is sent as an X-API-Key header to fetch /openapi.json
# and on every "Try it out" call, never put in a URL, and not stored by the browser.
PRIVATE_SCRIPT = """
const options = %(options)s;
const placeholder = %(placeholder)s;
const openapiUrl = "/openapi.json";
let hostKey = null;

function showPlaceholder(system, note) {
  const spec = JSON.parse(JSON.stringify(placeholder));
  if (note) spec.info.description = note + "\\n\\n" + spec.info.description;
  system.specActions.updateSpec(JSON.stringify(spec));
}

async function loadChuteSpec(system) {
  let resp;
  try {
    resp = await fetch(openapiUrl, {headers: {"X-API-Key": hostKey}, cache: "no-store"});
  } catch (err) {
    showPlaceholder(system, "**Could not reach the chute:** " + err);
    return;
  }
  if (!resp.ok) {
    let detail = resp.statusText;
    try { detail = (await resp.json()).detail || detail; } catch (err) { /* not JSON */ }
    showPlaceholder(system, "**The host refused this key (" + resp.status + "):** " + detail);
    return;
  }
  const spec = await resp.json();
  const schemes = placeholder.components.securitySchemes;
  spec.components = Object.assign({}, spec.components || {});
  spec.components.securitySchemes = Object.assign({}, spec.components.securitySchemes, schemes);
  spec.security = placeholder.security;
  system.specActions.updateSpec(JSON.stringify(spec));
}

const KeyFirst = (system) => ({
  statePlugins: {
    auth: {
      wrapActions: {
        authorize: (authorize) => (payload) => {
          const entry = payload && payload[%(scheme)s];
          const result = authorize(payload);
          if (entry && entry.value) {
            hostKey = String(entry.value).trim();
            loadChuteSpec(system);
          }
          return result;
        },
        logout: (logout) => (payload) => {
          hostKey = null;
          showPlaceholder(system, "");
          return logout(payload);
        },
      },
    },
  },
});

options.spec = placeholder;
options.plugins = [KeyFirst];
options.persistAuthorization = false;
options.requestInterceptor = (request) => {
  if (hostKey && !request.headers["X-API-Key"]) request.headers["X-API-Key"] = hostKey;
  return request;
};
options.presets = [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset];
window.ui = SwaggerUIBundle(options);
"""


def create_docs_router(prefix: str) -> APIRouter:
    """Returns the control API's docs page (at `{prefix}/docs`) and the Swagger UI files it loads."""
    router = APIRouter(include_in_schema=False)
    page = swagger_html(title="chutes host - control API", openapi_url=f"{prefix}/openapi.json")

    @router.get(f"{prefix}/docs")
    def api_docs() -> Response:
        return Response(page, media_type=HTML_TYPE.decode())

    @router.get(ASSETS_PATH + "{name}")
    def docs_asset(name: str) -> Response:
        body = read_asset(name)
        if body is None:
            raise HTTPException(404, f"no file {name!r} here; the API's docs are at {prefix}/docs")
        headers = {k.decode(): v.decode() for k, v in CACHE_HEADERS}
        return Response(body, media_type=ASSET_TYPES[name].decode(), headers=headers)

    return router


async def serve_private_docs(scope: dict[str, Any], send: Any, slug: str) -> bool:
    """Answers a private chute's `/docs` and its files, which need no key; returns False for other requests."""
    path = scope["path"]
    if scope["method"] not in ("GET", "HEAD") or path not in PRIVATE_DOCS_PATHS:
        return False
    if path == "/docs":
        await send_body(send, 200, private_docs_html(slug), HTML_TYPE, [(b"cache-control", b"no-store")])
    else:
        await send_asset(send, path.removeprefix(ASSETS_PATH))
    return True


def private_docs_html(slug: str) -> bytes:
    """Returns the docs page of a private chute: Swagger UI that loads the chute's cords once given a key."""
    placeholder = {
        "openapi": "3.1.0",
        "info": {
            "title": slug,
            "version": "private",
            "description": (
                f"Chute `{slug}` is private. Click **Authorize** and give its owner's API key: this page "
                "then loads the chute's cords and sends the key with every call you try. The key is sent "
                "in the `X-API-Key` header only, and is forgotten when you leave the page."
            ),
        },
        "paths": {},
        "components": {
            "securitySchemes": {
                KEY_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "An API key of this chute's owner on this host (cpk_...).",
                }
            }
        },
        "security": [{KEY_SCHEME: []}],
    }
    script = PRIVATE_SCRIPT % {
        "options": script_json(UI_OPTIONS),
        "placeholder": script_json(placeholder),
        "scheme": script_json(KEY_SCHEME),
    }
    return render_page(title=f"{slug} - docs", script=script)
