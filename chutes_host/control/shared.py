"""What the control API, its jobs routes and the dashboard share: the caller, a chute's description,
scaling and removing a chute, and the one place host errors become HTTP answers."""

from __future__ import annotations

import logging
import shutil
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel, Field

from chutes_host.control.admission import USER_SCOPE_KEY
from chutes_host.control.auth import read_key
from chutes_host.deploy.deployments import delete_deployment, find_own_deployment
from chutes_host.errors import HostError
from chutes_host.state import HostState
from chutes_host.store.models import Deployment, User

log = logging.getLogger("chutes.host")
# Declared so the OpenAPI document has security schemes (Swagger's Authorize button); the key itself
# is read by read_key, the same way the gateway reads it.
BEARER = HTTPBearer(auto_error=False, scheme_name="Bearer", description="`Authorization: Bearer cpk_...`")
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey", description="`X-API-Key: cpk_...`")


class CordOut(BaseModel):
    name: str | None = None
    path: str | None = None
    method: str | None = None
    stream: bool = False


class ChuteOut(BaseModel):
    slug: str
    name: str
    username: str
    version: int
    public: bool
    max_instances: int
    url: str
    phase: str
    error: str | None = None
    failed_phase: str | None = None
    log_tail: str = ""
    instances: list[dict[str, Any]] = Field(default_factory=list)
    cords: list[CordOut] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class ScaleIn(BaseModel):
    max_instances: int = Field(ge=1, le=64)


def current_user(
    request: Request,
    _bearer: Annotated[Any, Depends(BEARER)] = None,
    _api_key: Annotated[Any, Depends(API_KEY)] = None,
) -> User:
    """Returns the user whose key the request carries (ControlAdmission found it already under
    /api/v1); 401 when it has none or a bad one."""
    found = request.scope.get(USER_SCOPE_KEY)
    if found is None:
        key = read_key(request.scope["headers"])
        challenge = {"WWW-Authenticate": "Bearer"}
        if key is None:
            raise HTTPException(
                401, "missing API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`", headers=challenge
            )
        found = request.app.state.host.keys.lookup(key)
        if found is None:
            raise HTTPException(
                401,
                "unknown or revoked API key; ask the host's admin for one (`chutes host users add` / `keys create`)",
                headers=challenge,
            )
    return User(id=found[0], name=found[1])


UserDep = Annotated[User, Depends(current_user)]


def add_error_handlers(app: FastAPI) -> None:
    """Answers a HostError with its status and `{"detail": ...}`, and any other error with a 500 that
    names only its type (the host's log has the rest)."""

    @app.exception_handler(HostError)
    async def _host_error(_request: Request, exc: HostError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        detail = f"the host failed to handle this request ({type(exc).__name__}); its log has the details"
        return JSONResponse({"detail": detail}, status_code=500)


def describe_chute(state: HostState, row: Deployment) -> ChuteOut:
    """Takes a chute's row, and returns it with the live state the supervisor publishes."""
    live = state.supervisor.route(row.slug)
    status = live.describe() if live else {"phase": "stopped"}
    manifest = row.manifest
    return ChuteOut(
        slug=row.slug,
        name=row.name,
        username=manifest.get("username", ""),
        version=row.version,
        public=row.public,
        max_instances=row.max_instances,
        url=state.config.chute_url(row.slug),
        cords=[CordOut(**_cord(c)) for c in manifest["cords"]],
        created_at=row.created_at,
        updated_at=row.updated_at,
        **status,
    )


async def scale_own_chute(state: HostState, user: User, ref: str, count: int) -> str:
    """Records a user's chute's new instance count and has the supervisor reach it; returns the slug."""

    def update() -> str:
        with state.db.session() as session:
            row = find_own_deployment(session, user, ref)
            row.max_instances = row.scaled_to = count
            return row.slug

    slug = await run_in_threadpool(update)
    await state.supervisor.scale(slug, count)
    return slug


async def remove_chute(state: HostState, user: User, ref: str) -> str:
    """Deletes a user's chute: its record and secrets, its instances, its files; returns the slug."""
    slug = await run_in_threadpool(delete_deployment, state.config, state.db, user, ref)
    await state.supervisor.remove(slug)
    await run_in_threadpool(shutil.rmtree, state.config.chutes_dir / slug, True)
    return slug


def _cord(cord: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": cord.get("name"),
        "path": cord.get("path") or cord.get("public_api_path"),
        "method": cord.get("method"),
        "stream": bool(cord.get("stream")),
    }
