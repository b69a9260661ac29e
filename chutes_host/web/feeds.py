"""The dashboard's data: chutes and host as JSON for the pages to poll, log tails, scale, delete and Try it."""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from chutes_host.control.shared import ScaleIn, describe_chute, remove_chute, scale_own_chute
from chutes_host.deploy.deployments import deploy_history, find_own_deployment
from chutes_host.observability.logs import follow_logs
from chutes_host.observability.metrics import ChuteCounters, read_gpu_usage
from chutes_host.state import HostState
from chutes_host.store.models import Deployment
from chutes_host.web.sessions import SIGNED_OUT, WebSession, check_csrf, session_token

PREFIX = "/dashboard/api"
TRY_PREFIX = "/dashboard/try/"
# what a browser's Try it may pass on to a cord; cookies, the CSRF token and any key stay behind
TRY_HEADERS = (b"content-type", b"content-length", b"accept", b"transfer-encoding")
ERROR_WINDOW_MINUTES = 5
# a cord's answer arrives on the dashboard's own origin: it may set no cookies there, and a page
# opened from it runs no scripts and is sniffed as nothing else
ANSWER_HEADERS_DROPPED = {b"set-cookie", b"content-security-policy", b"x-content-type-options"}
ANSWER_HEADERS_ADDED = [
    (b"content-security-policy", b"sandbox; default-src 'none'"),
    (b"x-content-type-options", b"nosniff"),
]


def signed_in(request: Request) -> WebSession:
    """Returns the request's dashboard session; 401 without a live one."""
    session = request.app.state.web_sessions.find(session_token(request, request.app.state.web_cookies))
    if session is None:
        raise HTTPException(401, SIGNED_OUT)
    return session


def changing(request: Request, session: Annotated[WebSession, Depends(signed_in)]) -> WebSession:
    """Returns the session of a request that changes something, once its CSRF token checks out."""
    check_csrf(request, session)
    return session


SessionDep = Annotated[WebSession, Depends(signed_in)]
ChangeDep = Annotated[WebSession, Depends(changing)]


def create_feeds_router(state: HostState) -> APIRouter:
    """Returns the JSON and streaming routes the dashboard's pages call, each for the signed-in user only."""
    router = APIRouter(include_in_schema=False)
    config, db, supervisor = state.config, state.db, state.supervisor

    def summary(row: Deployment) -> dict[str, Any]:
        chute = describe_chute(state, row).model_dump(mode="json")
        live = supervisor.route(row.slug)
        chute["gpus_per_instance"] = live.spec.node_selector.gpu_count if live is not None else None
        chute["ready_instances"] = sum(1 for i in chute["instances"] if i["phase"] == "ready")
        chute["stats"] = chute_stats(supervisor.counters.chutes.get(row.slug))
        if live is not None and live.previous is not None:
            chute["previous"] = {"version": live.previous.spec.version, "phase": live.previous.phase}
        return chute

    def own_row(session: WebSession, slug: str) -> dict[str, Any]:
        with db.session() as db_session:
            return summary(find_own_deployment(db_session, session.user, slug))

    def own_slugs(session: WebSession) -> set[str]:
        with db.session() as db_session:
            rows = db_session.query(Deployment.slug).filter(Deployment.owner_id == session.user_id)
            return {slug for (slug,) in rows}

    @router.get(f"{PREFIX}/chutes")
    def list_chutes(session: SessionDep) -> list[dict[str, Any]]:
        with db.session() as db_session:
            rows = db_session.query(Deployment).filter(Deployment.owner_id == session.user_id)
            return [summary(r) for r in rows.order_by(Deployment.slug)]

    @router.get(f"{PREFIX}/chutes/{{slug}}")
    def get_chute(slug: str, session: SessionDep) -> dict[str, Any]:
        chute = own_row(session, slug)
        with db.session() as db_session:
            chute["history"] = [
                {"version": r.version, "deployed_at": r.created_at.isoformat(), "outcome": r.outcome}
                for r in deploy_history(db_session, chute["slug"])
            ]
        return chute

    @router.get(f"{PREFIX}/chutes/{{slug}}/logs")
    async def chute_logs(
        slug: str, session: SessionDep, tail: Annotated[int, Query(ge=0, le=2000)] = 200
    ) -> StreamingResponse:
        own = (await run_in_threadpool(own_row, session, slug))["slug"]
        lines = follow_logs(config.chutes_dir / own / "logs", tail=tail, follow=True)
        return StreamingResponse(lines, media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-store"})

    @router.post(f"{PREFIX}/chutes/{{slug}}/scale")
    async def scale_chute(slug: str, body: ScaleIn, session: ChangeDep) -> dict[str, Any]:
        own = await scale_own_chute(state, session.user, slug, body.max_instances)
        return await run_in_threadpool(own_row, session, own)

    @router.delete(f"{PREFIX}/chutes/{{slug}}")
    async def delete_chute(slug: str, session: ChangeDep) -> dict[str, str]:
        return {"deleted": await remove_chute(state, session.user, slug)}

    @router.get(f"{PREFIX}/host")
    async def host_info(session: SessionDep) -> dict[str, Any]:
        from chutes import __version__

        usage = await run_in_threadpool(read_gpu_usage, supervisor.gpus.inventory)
        own = await run_in_threadpool(own_slugs, session)
        snapshot = supervisor.gpus.snapshot()
        gpus = []
        for gpu in snapshot["gpus"]:
            holder = gpu["holder"]  # e.g. 'alice-llm#0'
            used = usage.get(gpu["uuid"])
            gpus.append(
                {
                    **gpu,
                    # another user's chute names are theirs: say only that the GPU is taken
                    "holder": holder if holder is None or holder.rsplit("#", 1)[0] in own else "another user's chute",
                    "memory_used_bytes": used[0] if used else None,
                    "memory_total_bytes": used[1] if used else None,
                    "utilization_percent": used[2] if used else None,
                }
            )
        uuids = [g["uuid"] for g in snapshot["gpus"]]
        history = [{"time": t, "used": [used.get(u) for u in uuids]} for t, used in state.gpu_history.samples]
        return {
            "version": __version__,
            "executor": config.executor,
            "started_at": state.started_at,
            "uptime_seconds": time.time() - state.started_at,
            "gpu_source": snapshot["source"],
            "gpu_note": snapshot["note"],
            "gpus": gpus,
            "gpu_history": history,
        }

    @router.api_route(
        TRY_PREFIX + "{slug}/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], response_model=None
    )
    async def try_cord(request: Request, slug: str, path: str, session: SessionDep) -> Response:
        """Calls a cord of the user's chute through the gateway, with the session's key, streaming the answer.
        GETs too carry the CSRF token: a GET cord may act, and another page could make the browser send one."""
        check_csrf(request, session)
        own = (await run_in_threadpool(own_row, session, slug))["slug"]
        return GatewayCall(request.app.state.gateway, own, f"{own}.{config.domain}", "/" + path, session.key)

    return router


class GatewayCall(Response):
    """A response that is the gateway's own answer to a cord call made on the signed-in user's behalf."""

    def __init__(self, gateway: Any, slug: str, host: str, path: str, key: str) -> None:
        self.gateway, self.slug, self.host, self.path, self.key = gateway, slug, host, path, key
        self.background = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        headers = [(n, v) for n, v in scope["headers"] if n in TRY_HEADERS]
        headers += [(b"host", self.host.encode()), (b"authorization", f"Bearer {self.key}".encode())]
        inner = dict(scope, path=self.path, raw_path=quote(self.path).encode(), root_path="", headers=headers)

        async def send_guarded(message: dict) -> None:
            if message["type"] == "http.response.start":
                kept = [(n, v) for n, v in message.get("headers", []) if n.lower() not in ANSWER_HEADERS_DROPPED]
                message = {**message, "headers": kept + ANSWER_HEADERS_ADDED}
            await send(message)

        await self.gateway.route_request(self.slug, inner, receive, send_guarded)


def chute_stats(counters: ChuteCounters | None) -> dict[str, Any]:
    """Returns a chute's last hour per minute, its requests over the last minute and its recent error rate."""
    if counters is None:
        counters = ChuteCounters()
    now = time.time()
    rows = counters.per_minute(now)
    elapsed = (now % 60) / 60
    per_minute = rows[-1][1] + rows[-2][1] * (1 - elapsed)  # a sliding minute from two fixed ones
    window = rows[-ERROR_WINDOW_MINUTES:]
    requests, errors = sum(r[1] for r in window), sum(r[2] for r in window)
    return {
        "minutes": [r[0] for r in rows],
        "requests": [r[1] for r in rows],
        "errors": [r[2] for r in rows],
        "latency_ms": [round(r[3] * 1000, 1) for r in rows],
        "requests_per_minute": round(per_minute, 1),
        "error_rate": round(errors / requests, 4) if requests else 0.0,
        "in_flight": counters.in_flight,
    }
