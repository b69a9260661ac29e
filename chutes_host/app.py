"""Builds one host's ASGI app: the gateway in front of the control API, with startup and shutdown."""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections.abc import AsyncIterator
from types import FrameType
from typing import Any

import uvicorn

from chutes_host.api import create_control_api
from chutes_host.auth import KeyCache
from chutes_host.config import HostConfig
from chutes_host.db import Database
from chutes_host.deployments import load_specs, record_ready
from chutes_host.executors import create_executor
from chutes_host.gateway import Gateway
from chutes_host.state import HostState
from chutes_host.supervisor import Supervisor

log = logging.getLogger("chutes.host")


def create_app(config: HostConfig) -> Gateway:
    """Returns the host's ASGI app; its lifespan brings every recorded deployment back."""
    from chutes.proxy import Proxy

    config.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(config.database_url)
    executor = create_executor(config.executor, config)
    supervisor = Supervisor(
        executor,
        start_timeout=config.start_timeout,
        health_interval=config.health_interval,
        on_ready=lambda spec: record_ready(db, spec),
    )
    state = HostState(config=config, db=db, supervisor=supervisor, keys=KeyCache(db))
    proxy = Proxy(connect_timeout=5.0, read_timeout=300.0, unreachable_retry_after=1)
    api = create_control_api(state)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        shutil.rmtree(config.tmp_dir, ignore_errors=True)
        for spec in load_specs(config, db):
            await supervisor.launch(spec)
        log.info("host ready: %d deployment(s), executor %s", len(supervisor.live), config.executor)
        try:
            yield
        finally:
            await supervisor.aclose()
            await proxy.aclose()
            db.close()

    api.router.lifespan_context = lifespan
    api.state.host = state
    gateway = Gateway(
        api, domain=config.domain, supervisor=supervisor, keys=state.keys, proxy=proxy, failures=state.failures
    )
    gateway.state = state
    return gateway


class HostServer(uvicorn.Server):
    """uvicorn's Server that also sets `stopping` on SIGINT/SIGTERM, so endless responses end."""

    def __init__(self, config: uvicorn.Config, *, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)
