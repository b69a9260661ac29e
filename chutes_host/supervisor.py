"""Starts every deployment's instances, health-checks them on /_ready and restarts them with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import httpx

from chutes_host.executors.base import Executor, ExecutorError
from chutes_host.live import Instance, LiveDeployment
from chutes_host.logs import read_tail, rotate_if_large
from chutes_host.spec import DeploymentSpec

log = logging.getLogger("chutes.host")

MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0
UNHEALTHY_AFTER = 3


class Supervisor:
    """Owns the live deployments of one host and keeps their instances running."""

    def __init__(
        self,
        executor: Executor,
        *,
        start_timeout: float,
        health_interval: float,
        on_ready: Callable[[DeploymentSpec], None] | None = None,
    ) -> None:
        """`on_ready` is called (in a worker thread) the first time each version has a ready instance."""
        self.executor = executor
        self.on_ready = on_ready
        self.start_timeout = start_timeout
        self.health_interval = health_interval
        self.live: dict[str, LiveDeployment] = {}
        # a frozen instance still accepts connections, so the check's timeout bounds how long it takes to notice
        self._client = httpx.AsyncClient(timeout=max(0.5, min(2.0, health_interval * 2)), trust_env=False)

    def route(self, slug: str) -> LiveDeployment | None:
        return self.live.get(slug)

    async def launch(self, spec: DeploymentSpec) -> LiveDeployment:
        """Starts a deployment (or a new version of one, which takes over once ready)."""
        old = self.live.get(spec.slug)
        dep = LiveDeployment(spec=spec, previous=old if old and not old.stopping else None)
        self.live[spec.slug] = dep
        dep.task = asyncio.create_task(self._bring_up(dep), name=f"deploy {spec.slug}")
        if old is not None and dep.previous is None:
            await self._stop(old)
        return dep

    async def remove(self, slug: str) -> LiveDeployment | None:
        """Stops every instance of a deployment (and of its previous version) and forgets it."""
        dep = self.live.pop(slug, None)
        if dep is not None:
            await self._stop(dep)
            version = dep
            while version is not None:  # e.g. the image the docker executor built for it
                await self.executor.discard(version.spec)
                version = version.previous
        return dep

    async def scale(self, slug: str, count: int) -> None:
        """Starts or stops instances until the deployment has `count` of them."""
        dep = self.live.get(slug)
        if dep is None:
            return
        dep.spec = replace(dep.spec, max_instances=count)
        if dep.phase in ("failed", "building"):
            return
        while len(dep.instances) < count:
            self._start_instance(dep, len(dep.instances))
        while len(dep.instances) > count:
            inst = dep.instances.pop()
            await self._stop_instance(inst)
        dep.refresh()

    async def aclose(self) -> None:
        await asyncio.gather(*(self._stop(d) for d in list(self.live.values())))
        self.live.clear()
        await self._client.aclose()
        await self.executor.aclose()

    async def _bring_up(self, dep: LiveDeployment) -> None:
        spec = dep.spec
        build_log = spec.logs_dir / "build.log"
        try:
            await self.executor.prepare(spec, build_log)
        except ExecutorError as exc:
            dep.fail(exc.phase, str(exc), exc.log_tail)
            await self._retire_previous(dep)
            return
        except Exception as exc:  # a broken executor must not take the host down
            log.exception("preparing %s failed", spec.slug)
            dep.fail("building", f"{type(exc).__name__}: {exc}", read_tail(build_log))
            return
        dep.phase = "starting"
        for index in range(spec.max_instances):
            self._start_instance(dep, index)

    def _start_instance(self, dep: LiveDeployment, index: int) -> None:
        inst = Instance(index=index, log_path=dep.spec.logs_dir / f"instance-{index}.log")
        dep.instances.append(inst)
        inst.task = asyncio.create_task(self._keep_running(dep, inst), name=f"{dep.spec.slug}#{index}")

    async def _keep_running(self, dep: LiveDeployment, inst: Instance) -> None:
        backoff = 1.0
        inst.ever_ready = False
        try:
            while not dep.stopping:
                started = time.monotonic()
                try:
                    outcome = await self._run_once(dep, inst)
                except ExecutorError as exc:
                    dep.fail(exc.phase, str(exc), exc.log_tail)
                    await self._retire_previous(dep)
                    return
                except Exception as exc:  # an engine hiccup must not leave the instance unsupervised
                    log.exception("instance %s#%d failed unexpectedly", dep.spec.slug, inst.index)
                    outcome = f"lost ({type(exc).__name__}: {exc})"
                    await self._discard_handle(inst)
                if dep.stopping:
                    return
                _mark(inst, f"instance {inst.index} {outcome} (exit code {inst.last_exit_code})")
                if not inst.ever_ready:
                    why = "exited" if outcome == "exited" else f"was not ready in {self.start_timeout:.0f} s"
                    dep.fail(
                        "starting",
                        f"instance {inst.index} {why} before it was ready (exit code {inst.last_exit_code})",
                        read_tail(inst.log_path),
                    )
                    await self._retire_previous(dep)
                    await self._stop_others(dep, inst)
                    return
                if time.monotonic() - started > STABLE_AFTER:
                    backoff = 1.0
                inst.restarts += 1
                inst.phase = "restarting"
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
        finally:
            await self._discard_handle(inst)
            if dep.stopping:
                inst.phase = "stopped"
            dep.refresh()

    async def _run_once(self, dep: LiveDeployment, inst: Instance) -> str:
        """Starts the instance, waits until it is ready, watches it; returns why it ended."""
        rotate_if_large(inst.log_path)
        _mark(inst, f"starting instance {inst.index} (version {dep.spec.version})")
        inst.phase = "starting"
        inst.handle = await self.executor.start(dep.spec, inst.index, inst.log_path)
        outcome = await self._wait_ready(inst)
        if outcome == "ready":
            inst.ever_ready = True
            inst.phase = "ready"
            dep.refresh()
            await self._retire_previous(dep)
            await self._record_ready(dep)
            outcome = await self._watch(inst)
        inst.phase = outcome
        dep.refresh()
        inst.last_exit_code = await self.executor.exit_code(inst.handle)
        await self.executor.stop(inst.handle)
        if inst.last_exit_code is None:
            inst.last_exit_code = await self.executor.exit_code(inst.handle)
        return outcome

    async def _record_ready(self, dep: LiveDeployment) -> None:
        if dep.proven or self.on_ready is None:
            return
        dep.proven = True
        try:
            await asyncio.to_thread(self.on_ready, dep.spec)
        except Exception:  # the version serves either way; a restart would try the older one again
            log.exception("recording that %s version %d is ready failed", dep.spec.slug, dep.spec.version)

    async def _discard_handle(self, inst: Instance) -> None:
        if inst.handle is None:
            return
        try:
            if await self.executor.exit_code(inst.handle) is None:
                await self.executor.stop(inst.handle)
        except Exception:
            log.exception("stopping instance %d failed", inst.index)

    async def _wait_ready(self, inst: Instance) -> str:
        deadline = time.monotonic() + self.start_timeout
        delay = 0.02
        while time.monotonic() < deadline:
            if await self.executor.exit_code(inst.handle) is not None:
                return "exited"
            if await self._is_ready(inst):
                return "ready"
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        return "unhealthy"

    async def _watch(self, inst: Instance) -> str:
        failures, next_check = 0, time.monotonic() + self.health_interval
        while True:
            await asyncio.sleep(min(0.25, self.health_interval))
            if await self.executor.exit_code(inst.handle) is not None:
                return "exited"
            if time.monotonic() < next_check:
                continue
            next_check = time.monotonic() + self.health_interval
            failures = 0 if await self._is_ready(inst) else failures + 1
            if failures >= UNHEALTHY_AFTER:
                return "unhealthy"

    async def _is_ready(self, inst: Instance) -> bool:
        handle = inst.handle
        try:
            resp = await self._client.get(f"http://{handle.host}:{handle.port}/_ready")
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    async def _retire_previous(self, dep: LiveDeployment) -> None:
        """Stops the versions this one replaces (a chain, after quick redeploys) and removes their files."""
        old, dep.previous = dep.previous, None
        retired = []
        while old is not None:
            retired.append(old)
            old = old.previous
        if retired:
            await self._stop(retired[0])
        for version in retired:
            if version.spec.directory != dep.spec.directory:
                await self.executor.discard(version.spec)
                shutil.rmtree(version.spec.directory, ignore_errors=True)

    async def _stop_others(self, dep: LiveDeployment, keep: Instance) -> None:
        for inst in dep.instances:
            if inst is not keep:
                await self._stop_instance(inst)

    async def _stop(self, dep: LiveDeployment) -> None:
        dep.stopping = True
        if dep.task is not None:
            dep.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dep.task
        await asyncio.gather(*(self._stop_instance(i) for i in dep.instances))
        if dep.phase != "failed":
            dep.phase = "stopped"
        if dep.previous is not None:
            await self._stop(dep.previous)

    async def _stop_instance(self, inst: Instance) -> None:
        if inst.task is not None and not inst.task.done():
            inst.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await inst.task
        inst.phase = "stopped"


def _mark(inst: Instance, text: str) -> None:
    inst.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(inst.log_path, "a") as f:
        f.write(f"--- {datetime.now(UTC):%Y-%m-%d %H:%M:%S} {text}\n")
