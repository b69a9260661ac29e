"""The control API under /api/v1: deploy, list, get, delete, logs and scale chutes; manage keys."""

from __future__ import annotations

import asyncio
import logging
import shutil
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from chutes_host import accounts
from chutes_host.admission import USER_SCOPE_KEY, ControlAdmission
from chutes_host.auth import read_key
from chutes_host.bundle import BundleError
from chutes_host.deployments import (
    DeployError,
    delete_deployment,
    find_own_deployment,
    install_bundle,
    receive_bundle,
)
from chutes_host.logs import follow_logs
from chutes_host.models import Deployment, User
from chutes_host.state import HostState

PREFIX = "/api/v1"
log = logging.getLogger("chutes.host")
BUNDLE_BODY = {
    "requestBody": {
        "required": True,
        "description": "the deploy bundle: a gzip tar of manifest.json, app/ and requirements.txt",
        "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
    }
}


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


class KeyOut(BaseModel):
    prefix: str
    label: str
    created_at: datetime
    revoked: bool


def create_control_api(state: HostState) -> FastAPI:
    """Returns the FastAPI app serving the control API of this host."""
    api = FastAPI(
        title="chutes host",
        version="1",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    api.state.host = state
    api.include_router(_chutes_router(state), prefix=PREFIX)
    api.add_middleware(
        ControlAdmission,
        prefix=PREFIX + "/",
        open_paths=frozenset({f"{PREFIX}/openapi.json", f"{PREFIX}/docs", f"{PREFIX}/docs/oauth2-redirect"}),
        keys=state.keys,
        failures=state.failures,
        streamed=lambda method, path: method == "POST" and path == f"{PREFIX}/chutes",
    )

    @api.exception_handler(DeployError)
    async def _deploy_error(_request: Request, exc: DeployError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @api.exception_handler(BundleError)
    async def _bundle_error(_request: Request, exc: BundleError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @api.exception_handler(accounts.AccountError)
    async def _account_error(_request: Request, exc: accounts.AccountError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        detail = f"the host failed to handle this request ({type(exc).__name__}); its log has the details"
        return JSONResponse({"detail": detail}, status_code=500)

    return api


def current_user(request: Request) -> User:
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


def _chutes_router(state: HostState) -> APIRouter:
    router = APIRouter()
    config, db, supervisor = state.config, state.db, state.supervisor
    deploy_lock = asyncio.Lock()

    def describe(row: Deployment) -> ChuteOut:
        live = supervisor.route(row.slug)
        status = live.describe() if live else {"phase": "stopped"}
        manifest = row.manifest
        return ChuteOut(
            slug=row.slug,
            name=row.name,
            username=manifest.get("username", ""),
            version=row.version,
            public=row.public,
            max_instances=row.max_instances,
            url=config.chute_url(row.slug),
            cords=[CordOut(**_cord(c)) for c in manifest["cords"]],
            created_at=row.created_at,
            updated_at=row.updated_at,
            **status,
        )

    @router.get("/me", tags=["users"])
    def who_am_i(user: UserDep) -> dict[str, str]:
        return {"name": user.name}

    @router.post("/chutes", status_code=202, response_model=ChuteOut, tags=["chutes"], openapi_extra=BUNDLE_BODY)
    async def deploy_chute(request: Request, user: UserDep, public: bool | None = None) -> ChuteOut:
        """Uploads a bundle and starts (or replaces) the chute; poll GET until phase is ready."""
        length = request.headers.get("content-length")
        archive = await receive_bundle(
            request.stream(), config, declared=int(length) if length and length.isdigit() else None
        )
        try:
            async with deploy_lock:  # one version number and one directory per deploy, even under races
                spec = await run_in_threadpool(install_bundle, archive, config, db, user.id, public=public)
                await supervisor.launch(spec)
        finally:
            archive.unlink(missing_ok=True)
        return await run_in_threadpool(_get, user, spec.slug)

    def _get(user: User, ref: str) -> ChuteOut:
        with db.session() as session:
            return describe(find_own_deployment(session, user, ref))

    @router.get("/chutes", response_model=list[ChuteOut], tags=["chutes"])
    def list_chutes(user: UserDep) -> list[ChuteOut]:
        with db.session() as session:
            rows = session.query(Deployment).filter(Deployment.owner_id == user.id)
            return [describe(r) for r in rows.order_by(Deployment.slug)]

    @router.get("/chutes/{ref}", response_model=ChuteOut, tags=["chutes"])
    def get_chute(ref: str, user: UserDep) -> ChuteOut:
        """Returns a chute's status, URL, instances and cords (by slug or name)."""
        return _get(user, ref)

    @router.delete("/chutes/{ref}", tags=["chutes"])
    async def delete_chute(ref: str, user: UserDep) -> dict[str, str]:
        slug = await run_in_threadpool(delete_deployment, config, db, user, ref)
        await supervisor.remove(slug)
        await run_in_threadpool(shutil.rmtree, config.chutes_dir / slug, True)
        return {"deleted": slug}

    @router.post("/chutes/{ref}/scale", response_model=ChuteOut, tags=["chutes"])
    async def scale_chute(ref: str, body: ScaleIn, user: UserDep) -> ChuteOut:
        def update() -> str:
            with db.session() as session:
                row = find_own_deployment(session, user, ref)
                row.max_instances = body.max_instances
                return row.slug

        slug = await run_in_threadpool(update)
        await supervisor.scale(slug, body.max_instances)
        return await run_in_threadpool(_get, user, slug)

    @router.get("/chutes/{ref}/logs", tags=["chutes"], response_class=StreamingResponse)
    async def chute_logs(
        ref: str,
        user: UserDep,
        tail: Annotated[int, Query(ge=0, le=10_000)] = 100,
        follow: bool = False,
    ) -> StreamingResponse:
        """Streams the build log and each instance's log (text); `follow` keeps streaming."""
        slug = (await run_in_threadpool(_get, user, ref)).slug
        lines = follow_logs(config.chutes_dir / slug / "logs", tail=tail, follow=follow, stop=state.stopping)
        return StreamingResponse(lines, media_type="text/plain; charset=utf-8")

    router.include_router(_keys_router(db, state))
    return router


def _keys_router(db, state: HostState) -> APIRouter:  # noqa: ANN001
    router = APIRouter(tags=["keys"])

    @router.get("/keys", response_model=list[KeyOut])
    def list_keys(user: UserDep) -> list[KeyOut]:
        with db.session() as session:
            keys = accounts.list_keys(session, session.get(User, user.id))
            return [
                KeyOut(prefix=k.prefix, label=k.label, created_at=k.created_at, revoked=k.revoked_at is not None)
                for k in keys
            ]

    @router.post("/keys", status_code=201)
    def create_key(user: UserDep, label: Annotated[str, Query(max_length=accounts.MAX_LABEL)] = "") -> dict[str, str]:
        """Creates a key for the caller; the key is in this answer only."""
        with db.session() as session:
            return {"key": accounts.create_key(session, session.get(User, user.id), label=label)}

    @router.delete("/keys/{prefix}")
    def revoke_key(prefix: str, user: UserDep) -> dict[str, str]:
        with db.session() as session:
            key = accounts.revoke_key(session, prefix, user=session.get(User, user.id))
            revoked = key.prefix
        state.keys.forget()
        return {"revoked": revoked}

    return router


def _cord(cord: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": cord.get("name"),
        "path": cord.get("path") or cord.get("public_api_path"),
        "method": cord.get("method"),
        "stream": bool(cord.get("stream")),
    }
