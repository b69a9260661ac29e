"""Builds one host's ASGI app: the gateway in front of the control API, with startup and shutdown."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import AsyncIterator
from typing import Any

from chutes_host.api import create_control_api
from chutes_host.auth import KeyCache
from chutes_host.config import HostConfig
from chutes_host.db import Database
from chutes_host.deployments import load_specs
from chutes_host.executors import create_executor
from chutes_host.gateway import Gateway
from chutes_host.gpus import load_inventory
from chutes_host.holdings import Holdings
from chutes_host.state import HostState
from chutes_host.supervisor import Supervisor

log = logging.getLogger("chutes.host")


def create_app(config: HostConfig) -> Gateway:
    """Returns the host's ASGI app; its lifespan brings every recorded deployment back."""
    from chutes.proxy import Proxy

    config.data_dir.mkdir(parents=True, exist_ok=True)
    inventory = load_inventory(config.gpus)
    db = Database(config.database_url)
    executor = create_executor(config.executor, config)
    supervisor = Supervisor(
        executor,
        start_timeout=config.start_timeout,
        health_interval=config.health_interval,
        holdings=Holdings(inventory, config.gpus_file),
    )
    state = HostState(config=config, db=db, supervisor=supervisor, keys=KeyCache(db))
    proxy = Proxy(connect_timeout=5.0, read_timeout=300.0)
    api = create_control_api(state)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        shutil.rmtree(config.tmp_dir, ignore_errors=True)
        log.info("GPUs: %s", inventory.summary())
        for spec in load_specs(config, db):
            await supervisor.launch(spec)
        supervisor.gpus.forget_remembered()
        log.info("host ready: %d deployment(s), executor %s", len(supervisor.live), config.executor)
        try:
            yield
        finally:
            await supervisor.aclose()
            await proxy.aclose()
            db.close()

    api.router.lifespan_context = lifespan
    api.state.host = state
    return Gateway(api, domain=config.domain, supervisor=supervisor, keys=state.keys, proxy=proxy)
