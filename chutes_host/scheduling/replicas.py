"""Deployments whose executor runs the replicas itself (Kubernetes): the supervisor sets how many, the executor's
watch reports how they are."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from chutes_host.deploy.spec import DeploymentSpec
from chutes_host.executors.base import ExecutorError, ReplicaExecutor
from chutes_host.observability.live import LiveDeployment
from chutes_host.observability.logs import read_tail

log = logging.getLogger("chutes.host")


class ManagedReplicas:
    """Carries out the supervisor's decisions on an executor with `capabilities.manages_replicas`: apply a
    version with a replica count, change the count, remove; and keeps one pod watch per deployment."""

    def __init__(
        self,
        executor: ReplicaExecutor,
        live: dict[str, LiveDeployment],
        *,
        on_ready: Callable[[LiveDeployment], Awaitable[None]],
    ) -> None:
        self.executor = executor
        self.live = live
        self.on_ready = on_ready
        self._watches: dict[str, asyncio.Task] = {}

    async def launch(self, spec: DeploymentSpec) -> LiveDeployment:
        """Applies a new version; Kubernetes rolls it out (the old pods serve until new ones are ready)."""
        old = self.live.get(spec.slug)
        replicas = max(1, spec.min_instances, len(old.instances) if old is not None else 0)
        dep = LiveDeployment(spec=spec)
        if old is not None:
            old.stopping = True
            await self._cancel(old)
            dep.previous = old  # its ready pods keep serving until the new watch reports them
        self.live[spec.slug] = dep
        dep.task = asyncio.create_task(self._bring_up(dep, replicas), name=f"deploy {spec.slug}")
        return dep

    async def scale(self, dep: LiveDeployment, count: int) -> None:
        """Sets the replicas of a deployment (0: scaled to zero)."""
        if dep.phase in ("building", "failed") and not dep.proven:
            return
        try:
            await self.executor.scale(dep.spec, count)
        except ExecutorError as exc:
            log.error("%s: scaling to %d failed: %s", dep.spec.slug, count, exc)

    async def remove(self, dep: LiveDeployment) -> None:
        dep.stopping = True
        await self._cancel(dep)
        try:
            await self.executor.remove(dep.spec)
        except ExecutorError as exc:  # the chute's record is gone already: say what is left, and why
            log.error("%s: removing its objects from the cluster failed: %s", dep.spec.slug, exc)
        dep.phase = "stopped"

    async def aclose(self) -> None:
        """Stops watching; the pods keep running in the cluster, and a restarted host adopts them."""
        for dep in list(self.live.values()):
            await self._cancel(dep)

    async def _bring_up(self, dep: LiveDeployment, replicas: int) -> None:
        spec = dep.spec
        build_log = spec.logs_dir / "build.log"
        try:
            await self.executor.prepare(spec, build_log)
            dep.phase = "starting"
            # a scale set while the image was prepared counts (the supervisor updated dep.spec)
            await self.executor.apply(spec, max(replicas, dep.spec.min_instances))
        except ExecutorError as exc:
            dep.fail(exc.phase, str(exc), exc.log_tail or read_tail(build_log))
            return
        except Exception as exc:  # a broken executor must not take the host down
            log.exception("deploying %s failed", spec.slug)
            dep.fail("starting", f"{type(exc).__name__}: {exc}", read_tail(build_log))
            return
        self._watches[spec.slug] = asyncio.create_task(
            self.executor.watch(dep, lambda: self.on_ready(dep)), name=f"watch {spec.slug}"
        )

    async def _cancel(self, dep: LiveDeployment) -> None:
        tasks = [dep.task]
        watch = self._watches.get(dep.spec.slug)
        if watch is not None and self.live.get(dep.spec.slug) in (dep, None):
            tasks.append(self._watches.pop(dep.spec.slug))
        for task in tasks:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
