"""The control API under /api/v1: deploy, list, get, delete, logs and scale chutes; manage secrets and keys."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Annotated

import anyio.from_thread
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field

from chutes.node_selector import NodeSelector
from chutes_host.control.admission import ControlAdmission
from chutes_host.control.auth import read_key
from chutes_host.control.shared import (
    ChuteOut,
    ScaleIn,
    UserDep,
    add_error_handlers,
    describe_chute,
    remove_chute,
    scale_own_chute,
)
from chutes_host.deploy.deployments import check_manifest_images, find_own_deployment, install_bundle, receive_bundle
from chutes_host.deploy.manifest import Manifest
from chutes_host.errors import DeployError
from chutes_host.observability.docs import create_docs_router
from chutes_host.observability.logs import follow_logs
from chutes_host.observability.metrics import read_gpu_usage, render_host_metrics
from chutes_host.state import HostState
from chutes_host.store import accounts, secrets
from chutes_host.store.models import Deployment, User

PREFIX = "/api/v1"
BUNDLE_BODY = {
    "requestBody": {
        "required": True,
        "description": "the deploy bundle: a gzip tar of manifest.json, app/ and requirements.txt",
        "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
    }
}


class SecretIn(BaseModel):
    value: str


class SecretOut(BaseModel):
    chute: str
    name: str
    created_at: datetime
    updated_at: datetime


class LimitsOut(BaseModel):
    max_bundle_bytes: int = Field(description="largest deploy bundle (gzip tar) accepted, in bytes")
    max_unpacked_bytes: int = Field(description="largest total size of a bundle's files once unpacked, in bytes")
    max_bundle_files: int = Field(description="most members a bundle may hold")


class KeyOut(BaseModel):
    prefix: str
    label: str
    created_at: datetime
    revoked: bool


def create_control_api(state: HostState, *, routers: Sequence[APIRouter] = ()) -> FastAPI:
    """Returns the FastAPI app serving the control API of this host, with `routers` (other parts' routes,
    such as the jobs') under /api/v1 too; chutes_host.app adds the dashboard."""
    api = FastAPI(
        title="chutes host",
        version="1",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,  # served by create_docs_router, with Swagger UI's files from this host
        redoc_url=None,
    )
    api.state.host = state
    api.include_router(_chutes_router(state, routers), prefix=PREFIX)
    api.add_middleware(
        ControlAdmission,
        prefix=PREFIX + "/",
        open_paths=frozenset(
            {f"{PREFIX}/openapi.json", f"{PREFIX}/docs", f"{PREFIX}/docs/oauth2-redirect", f"{PREFIX}/limits"}
        ),
        keys=state.keys,
        failures=state.failures,
    )

    api.include_router(create_docs_router(PREFIX))

    @api.get("/_metrics", include_in_schema=False)
    async def host_metrics(request: Request) -> PlainTextResponse:
        """The host's Prometheus metrics, for whoever holds the metrics key (not for users' keys)."""
        wanted = state.config.metrics_key
        if not wanted:
            raise HTTPException(404, "host metrics are off; start the host with --metrics-key (or CHUTES_METRICS_KEY)")
        given = read_key(request.scope["headers"]) or ""
        if not hmac.compare_digest(given.encode(), wanted.encode()):
            raise HTTPException(
                401,
                "send the host's metrics key as `Authorization: Bearer <key>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        supervisor = state.supervisor
        gpu_usage = await run_in_threadpool(read_gpu_usage, supervisor.gpus.inventory)
        text = render_host_metrics(supervisor.gpus, supervisor.live, supervisor.counters, gpu_usage)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    add_error_handlers(api)
    return api


def _chutes_router(state: HostState, routers: Sequence[APIRouter]) -> APIRouter:
    router = APIRouter()
    config, db, supervisor = state.config, state.db, state.supervisor
    deploy_lock = asyncio.Lock()

    def read_secrets(session, owner_id: int, chute: str) -> dict[str, str]:
        return secrets.read_env(session, secrets.secret_box(config), owner_id, chute)

    def describe(row: Deployment) -> ChuteOut:
        return describe_chute(state, row)

    @router.get("/limits", response_model=LimitsOut, tags=["chutes"])
    def limits() -> LimitsOut:
        """Returns the bundle limits, so a client can refuse an oversized deploy before uploading it."""
        return LimitsOut(
            max_bundle_bytes=config.max_bundle_bytes,
            max_unpacked_bytes=config.max_unpacked_bytes,
            max_bundle_files=config.max_bundle_files,
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
                spec = await run_in_threadpool(
                    install_bundle,
                    archive,
                    config,
                    db,
                    user.id,
                    public=public,
                    read_env=read_secrets,
                    check=check_gpus,
                    outcome_of=replaced_outcome,
                )
                await supervisor.launch(spec)
        finally:
            archive.unlink(missing_ok=True)
        return await run_in_threadpool(_get, user, spec.slug)

    def check_gpus(manifest: Manifest) -> None:
        """Refuses a deploy no instance of which could start now, or that names another chute's image (run in a
        worker thread)."""
        check_manifest_images(manifest, supervisor.executor)
        selector = NodeSelector(**(manifest.node_selector or {}))
        # the supervisor's state belongs to the event loop, so ask it there
        refused = anyio.from_thread.run_sync(supervisor.refusal, selector, manifest.slug)
        if refused is not None:
            status, reason = refused
            raise DeployError(f"cannot deploy {manifest.slug!r}: {reason}", status=status)

    def replaced_outcome(slug: str) -> str:
        """Says how the running version of a chute ends as a deploy replaces it (run in a worker thread)."""
        live = anyio.from_thread.run_sync(supervisor.route, slug)
        if live is None or live.phase in ("ready", "stopped"):
            return "replaced"
        return live.phase if live.phase == "failed" else f"replaced while {live.phase}"

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
        return {"deleted": await remove_chute(state, user, ref)}

    @router.post("/chutes/{ref}/scale", response_model=ChuteOut, tags=["chutes"])
    async def scale_chute(ref: str, body: ScaleIn, user: UserDep) -> ChuteOut:
        slug = await scale_own_chute(state, user, ref, body.max_instances)
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

    router.include_router(_secrets_router(state))
    for other in routers:
        router.include_router(other)
    router.include_router(_keys_router(db, state))
    return router


def _secrets_router(state: HostState) -> APIRouter:
    router = APIRouter(prefix="/chutes/{ref}/secrets", tags=["secrets"])
    config, db, supervisor = state.config, state.db, state.supervisor

    def describe(row) -> SecretOut:
        return SecretOut(chute=row.chute, name=row.name, created_at=row.created_at, updated_at=row.updated_at)

    async def refresh_live(user: User, chute: str) -> None:
        """Gives a running chute's next instance (re)start the secrets as they are now."""
        live = supervisor.route(f"{user.name}-{chute}")
        if live is not None and live.spec.owner_id == user.id:
            live.spec = replace(live.spec, env=await secrets.secret_env(db, config, owner_id=user.id, chute=chute))

    @router.get("", response_model=list[SecretOut])
    def list_secrets(ref: str, user: UserDep) -> list[SecretOut]:
        """Lists a chute's secrets: names and times only, never values."""
        with db.session() as session:
            chute = secrets.own_chute_name(session, user, ref)
            return [describe(r) for r in secrets.list_secrets(session, user.id, chute)]

    @router.put("/{name:path}", response_model=SecretOut)
    async def set_secret(ref: str, name: str, body: SecretIn, user: UserDep) -> SecretOut:
        """Sets a secret, given to the chute's instances as the environment variable `name` from their next start."""

        def store() -> SecretOut:
            with db.session() as session:
                chute = secrets.own_chute_name(session, user, ref)
                row = secrets.set_secret(session, secrets.secret_box(config), user, chute, name, body.value)
                return describe(row)

        out = await run_in_threadpool(store)
        await refresh_live(user, out.chute)
        return out

    @router.delete("/{name:path}")
    async def delete_secret(ref: str, name: str, user: UserDep) -> dict[str, str]:
        def remove() -> str:
            with db.session() as session:
                chute = secrets.own_chute_name(session, user, ref)
                secrets.delete_secret(session, user, chute, name)
                return chute

        chute = await run_in_threadpool(remove)
        await refresh_live(user, chute)
        return {"deleted": name, "chute": chute}

    return router


def _keys_router(db, state: HostState) -> APIRouter:
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
