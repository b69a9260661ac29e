"""Builds one host's ASGI app: the gateway in front of the control API (its chutes, jobs and dashboard parts
composed here), with startup and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import shutil
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from chutes_host.config import HostConfig
from chutes_host.control.api import create_control_api
from chutes_host.control.auth import KeyCache
from chutes_host.deploy.deployments import load_specs, record_ready
from chutes_host.executors import create_executor
from chutes_host.gateway.budget import SMALL, BodyBudget, Budget, MiB
from chutes_host.gateway.router import Gateway, slug_from_host
from chutes_host.jobs.api import create_jobs_router, is_job_start
from chutes_host.jobs.runs import JobRunner
from chutes_host.observability.metrics import GPU_SAMPLE_SECONDS, read_gpu_usage
from chutes_host.scheduling.gpus import load_inventory
from chutes_host.scheduling.holdings import Holdings
from chutes_host.scheduling.supervisor import Supervisor
from chutes_host.state import HostState
from chutes_host.store.db import Database
from chutes_host.store.models import User
from chutes_host.store.secrets import SecretError, read_env, secret_box
from chutes_host.web import mount_web

log = logging.getLogger("chutes.host")
# what a caller may send a chute through the host (each chute's own max_body_size, 100 MiB by default, is
# checked by the chute); bodies stream through, so this bounds time and the instance, not the host's memory
CHUTE_BODY = Budget(1024 * MiB, 60.0)
FORM_BODY = Budget(16 * 1024, 30.0)  # the sign-in and sign-out forms: a key, a token, a path
FORM_PATHS = frozenset({"/dashboard/sign-in", "/dashboard/sign-out"})


def create_app(config: HostConfig) -> Gateway:
    """Returns the host's ASGI app; its lifespan brings every recorded deployment back."""
    from chutes.proxy import Proxy

    make_data_dir_private(config)
    inventory = load_inventory(config.gpus)
    db = Database(config.database_url)
    executor = create_executor(config.executor, config)
    isolation = executor.describe_isolation()
    supervisor = Supervisor(
        executor,
        start_timeout=config.start_timeout,
        health_interval=config.health_interval,
        holdings=Holdings(inventory, config.gpus_file),
        on_ready=lambda spec: record_ready(db, spec),
        policy=config.scaling,
    )
    state = HostState(config=config, db=db, supervisor=supervisor, keys=KeyCache(db))
    state.jobs = JobRunner(config, db, supervisor)
    proxy = Proxy(connect_timeout=5.0, read_timeout=300.0, unreachable_retry_after=1)
    api = create_control_api(state, routers=[create_jobs_router(state, state.jobs)])
    mount_web(api, state)

    def read_secrets(session: Any, owner_id: int, chute: str) -> dict[str, str]:
        try:
            return read_env(session, secret_box(config), owner_id, chute)
        except SecretError as exc:
            log.error("starting %s-%s without its secrets: %s", session.get(User, owner_id).name, chute, exc)
            return {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        shutil.rmtree(config.tmp_dir, ignore_errors=True)
        if executor.capabilities.manages_replicas:  # the cluster's scheduler places GPUs, not this host
            log.info("GPUs: placed by the cluster (nvidia.com/gpu requests); the host's own are not used")
        else:
            log.info("GPUs: %s", inventory.summary())
        for spec in load_specs(config, db, read_env=read_secrets):
            await supervisor.launch(spec)
        state.jobs.restore()
        supervisor.gpus.forget_remembered()
        if isolation is not None:
            log.log(logging.INFO if isolation.sandboxed else logging.WARNING, "%s", isolation.summary)
        log.info("host ready: %d deployment(s), executor %s", len(supervisor.live), config.executor)
        # Everything imported and built so far lives as long as the host: out of the cyclic collector's
        # sight, a full collection no longer walks it, which held the loop (and every stream) ~100 ms.
        gc.collect()
        gc.freeze()
        sampler = asyncio.create_task(sample_gpu_memory(state), name="GPU memory samples")
        try:
            yield
        finally:
            sampler.cancel()
            await state.jobs.aclose()
            await supervisor.aclose()
            await proxy.aclose()
            db.close()

    api.router.lifespan_context = lifespan
    api.state.host = state
    gateway = BudgetedGateway(
        api,
        domain=config.domain,
        supervisor=supervisor,
        keys=state.keys,
        proxy=proxy,
        failures=state.failures,
        budget_of=route_budgets(config),
    )
    gateway.state = state
    gateway.jobs = state.jobs
    gateway.direct = config.direct_gateway
    api.state.gateway = gateway  # the dashboard's Try it calls cords through it, as the signed-in user
    return gateway


class BudgetedGateway(Gateway):
    """The host's gateway behind its body budgets (chutes_host.gateway.budget): every request, whatever its route,
    chutes' included, gets one before anything reads its body."""

    def __init__(self, app: Any, *, budget_of: Callable[[dict], Budget], **options: Any) -> None:
        super().__init__(app, **options)
        self.budgeted = BodyBudget(super().__call__, budget_of=budget_of)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self.budgeted(scope, receive, send)


def route_budgets(config: HostConfig) -> Callable[[dict], Budget]:
    """Returns the function that names a request's body budget: a chute's (gateway, Try it), an upload's
    (deploy, job start), the sign-in forms', or the small one of every other route."""
    suffix = "." + config.domain.lower()
    upload = Budget(config.max_bundle_bytes, 60.0)

    def budget_of(scope: dict) -> Budget:
        host = next((v for n, v in scope["headers"] if n == b"host"), None)
        if host is not None and slug_from_host(host.decode("latin-1"), suffix) is not None:
            return CHUTE_BODY
        path, method = scope["path"], scope["method"]
        if path.startswith("/dashboard/try/"):
            return CHUTE_BODY
        if path in FORM_PATHS:
            return FORM_BODY
        if method == "POST" and (path == "/api/v1/chutes" or is_job_start(method, path)):
            return upload
        return SMALL

    return budget_of


class HostServer(uvicorn.Server):
    """uvicorn's Server that also sets `stopping` on SIGINT/SIGTERM, so endless responses end."""

    def __init__(self, config: uvicorn.Config, *, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)


async def sample_gpu_memory(state: HostState) -> None:
    """Records each GPU's memory in use every GPU_SAMPLE_SECONDS, for the dashboard's last-hour plot."""
    inventory = state.supervisor.gpus.inventory
    while True:
        usage = await asyncio.to_thread(read_gpu_usage, inventory)
        if not usage:
            return  # declared GPUs, or none, or no NVML: nothing to sample, now or later
        state.gpu_history.add(usage)
        await asyncio.sleep(GPU_SAMPLE_SECONDS)


def make_data_dir_private(config: HostConfig) -> None:
    """Creates the data dir (or tightens an existing one) so only the host's user can enter it,
    and keeps a SQLite database file readable by that user only."""
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if config.data_dir.stat().st_uid == os.geteuid() and config.data_dir.stat().st_mode & 0o077:
        config.data_dir.chmod(0o700)
    database = sqlite_file(config.database_url)
    if database is None:
        return
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
    for path in (database, *(database.with_name(database.name + s) for s in ("-journal", "-wal", "-shm"))):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_uid == os.geteuid():
                path.chmod(0o600)


def sqlite_file(url: str) -> Path | None:
    """Takes a database URL, and returns the SQLite file it names (None for other databases, or memory)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()
