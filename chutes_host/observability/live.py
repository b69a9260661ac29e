"""The in-memory state of deployed chutes and their instances, as the gateway reads it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chutes_host.deploy.spec import DeploymentSpec
from chutes_host.executors.base import InstanceHandle
from chutes_host.scheduling.gpus import Gpu


@dataclass(eq=False)
class Instance:
    """One instance of a chute; phase is pending, starting, ready, unhealthy, restarting, exited or stopped.

    `gpus` is None while the instance waits for GPUs (phase pending), `()` for a chute that needs none.
    """

    index: int
    log_path: Path
    phase: str = "starting"
    gpus: tuple[Gpu, ...] | None = ()
    waiting: str | None = None
    handle: InstanceHandle | None = None
    restarts: int = 0
    last_exit_code: int | None = None
    ever_ready: bool = False
    task: asyncio.Task | None = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        handle = self.handle
        return {
            "index": self.index,
            "phase": self.phase,
            "port": handle.port if handle and handle.uds is None else None,  # None: on a host-only Unix socket
            "pid": handle.pid if handle else None,
            "container_id": handle.container_id if handle else None,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
            "gpus": [g.describe() for g in self.gpus or ()],
            "waiting_for": self.waiting,
        }


@dataclass(eq=False)
class LiveDeployment:
    """A deployment being served; phase is building, pending (no GPUs free yet), starting, ready, cold (scaled
    to zero: the next request starts it), failed or stopped."""

    spec: DeploymentSpec
    phase: str = "building"
    error: str | None = None
    failed_phase: str | None = None
    log_tail: str = ""
    instances: list[Instance] = field(default_factory=list)
    leaving: list[Instance] = field(default_factory=list, repr=False)  # scaled down, finishing their requests
    previous: LiveDeployment | None = field(default=None, repr=False)
    stopping: bool = False
    proven: bool = False  # had a ready instance at least once
    task: asyncio.Task | None = field(default=None, repr=False)
    _ready: list[InstanceHandle] = field(default_factory=list, repr=False)
    _turn: itertools.count = field(default_factory=itertools.count, repr=False)
    _changed: asyncio.Event | None = field(default=None, repr=False)

    @functools.cached_property
    def concurrency(self) -> int:
        """Returns how many requests one instance serves at once (beyond that it answers 429)."""
        return self.spec.manifest.get("concurrency") or 1

    def free_instance(self) -> InstanceHandle | None:
        """Returns a ready instance serving fewer requests than its concurrency, if there is one."""
        limit = self.concurrency
        for handle in self._ready:
            if handle.in_flight < limit:
                return handle
        return None

    async def wait_changed(self, timeout: float) -> None:
        """Returns once an instance became ready or finished a request (see `notify`), or after `timeout`."""
        if self._changed is None:
            self._changed = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def notify(self) -> None:
        """Wakes the requests waiting in `wait_changed`."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def next_ready(self) -> InstanceHandle | None:
        """Returns the next ready instance in round-robin order, or the previous version's."""
        ready = self._ready
        if ready:
            return ready[next(self._turn) % len(ready)]
        if self.previous is not None:
            return self.previous.next_ready()
        return None

    def refresh(self) -> None:
        """Recomputes the ready list and the deployment's phase after an instance changed."""
        self._ready = [i.handle for i in self.instances if i.phase == "ready" and i.handle]
        self.notify()
        if self.phase in ("failed", "stopped", "building"):
            return
        if self._ready:
            self.phase = "ready"
        elif not self.instances:
            self.phase = "cold"
        else:
            waiting = self.instances and all(i.gpus is None for i in self.instances)
            self.phase = "pending" if waiting else "starting"

    def fail(self, phase: str, error: str, log_tail: str) -> None:
        self.phase, self.failed_phase, self.error, self.log_tail = "failed", phase, error, log_tail
        self._ready = []

    def describe(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "error": self.error,
            "failed_phase": self.failed_phase,
            "log_tail": self.log_tail,
            "instances": [i.describe() for i in self.instances],
            "ready_instances": len(self._ready),
        }
