"""Starts every deployment's instances, health-checks them on /_ready, restarts them with backoff, and
carries out the scaler's decisions (scale to zero, wake on request, autoscale)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

import httpx

from chutes.node_selector import NodeSelector
from chutes_host.deploy.spec import DeploymentSpec
from chutes_host.deploy.versionfiles import VersionFiles
from chutes_host.executors.base import Executor, ExecutorError, ReplicaExecutor
from chutes_host.observability.live import Instance, LiveDeployment
from chutes_host.observability.logs import read_tail, rotate_if_large
from chutes_host.observability.metrics import HostCounters
from chutes_host.scheduling.gpus import Inventory
from chutes_host.scheduling.holdings import Holder, Holdings
from chutes_host.scheduling.replicas import ManagedReplicas
from chutes_host.scheduling.scaler import Decision, ScalePolicy, Scaler

log = logging.getLogger("chutes.host")

DRAIN_TIMEOUT = 300.0  # the gateway's read timeout: no answer takes longer to start
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
        holdings: Holdings | None = None,
        on_ready: Callable[[DeploymentSpec], None] | None = None,
        policy: ScalePolicy | None = None,
    ) -> None:
        """`on_ready` is called (in a worker thread) the first time each version has a ready instance."""
        self.executor = executor
        self.files = VersionFiles(executor)  # a replaced version's files stay while a job runs on it
        self.on_ready = on_ready
        self.gpus = holdings or Holdings(Inventory((), "none"))
        self.counters = HostCounters()
        self.start_timeout = start_timeout
        self.health_interval = health_interval
        self.live: dict[str, LiveDeployment] = {}
        self._hold_pending = False
        # a frozen instance still accepts connections, so the check's timeout bounds how long it takes to notice
        self._check_timeout = max(0.5, min(2.0, health_interval * 2))
        self._client = httpx.AsyncClient(timeout=self._check_timeout, trust_env=False)
        self._socket_clients: dict[str, httpx.AsyncClient] = {}
        self.policy = policy or ScalePolicy()
        self.scaler = Scaler(self.policy)
        self._scaling: asyncio.Task | None = None
        self._resizing: dict[str, asyncio.Task] = {}
        # an executor that runs the replicas itself (Kubernetes) gets counts, never single starts
        self.replicas = None
        if executor.capabilities.manages_replicas:
            self.replicas = ManagedReplicas(cast(ReplicaExecutor, executor), self.live, on_ready=self._managed_ready)

    def route(self, slug: str) -> LiveDeployment | None:
        return self.live.get(slug)

    async def launch(self, spec: DeploymentSpec) -> LiveDeployment:
        """Starts a deployment (or a new version of one, which takes over once ready).

        Its instances are placed on GPUs at once (so concurrent deploys never share one); those that
        do not fit wait as `pending`. A new version that fits only on its old version's GPUs replaces
        it without overlap: the old version stops first.
        """
        if self.replicas is not None:
            dep = await self.replicas.launch(spec)
            self._start_scaler()
            return dep
        old = self.live.get(spec.slug)
        starting = max(1, spec.min_instances)
        overlap = old is not None and not old.stopping and self.gpus.fits(spec.node_selector, starting)
        if old is not None and not old.stopping and not overlap:
            log.info("%s: not enough free GPUs to start beside the running version; stopping it first", spec.slug)
        dep = LiveDeployment(spec=spec, previous=old if overlap else None)
        self.live[spec.slug] = dep
        if old is not None and not overlap:
            self._hold_pending = True  # the GPUs the old version frees are for the new one
            try:
                await self._stop(old)
            finally:
                self._hold_pending = False
        for index in range(max(1, spec.min_instances)):  # the scaler adds more on load, up to max_instances
            self._new_instance(dep, index)
        self._start_pending()
        dep.task = asyncio.create_task(self._bring_up(dep), name=f"deploy {spec.slug}")
        self._start_scaler()
        return dep

    def _start_scaler(self) -> None:
        if self._scaling is None:
            self._scaling = asyncio.create_task(self._scale_loop(), name="scaler")

    async def _managed_ready(self, dep: LiveDeployment) -> None:
        """Called by the executor's watch the first time a pod of the deployment's version is ready."""
        self.scaler.started(dep.spec.slug, time.monotonic())
        await self._record_ready(dep)

    def gpus_freed(self) -> None:
        """Starts pending instances that now fit, after GPUs were freed by something else (a job that ended)."""
        self._start_pending()

    def refusal(self, selector: NodeSelector, slug: str) -> tuple[int, str] | None:
        """Returns (status, message) if a deploy of this selector cannot start one instance now."""
        if self.replicas is not None:
            return None  # the cluster's scheduler decides; a pod that cannot fit is reported pending
        return self.gpus.refusal(selector, replacing=slug)

    async def remove(self, slug: str) -> LiveDeployment | None:
        """Stops every instance of a deployment (and of its previous version) and forgets it."""
        dep = self.live.pop(slug, None)
        self.counters.chutes.pop(slug, None)
        self.scaler.forget(slug)
        if dep is not None and self.replicas is not None:
            await self.replicas.remove(dep)
        elif dep is not None:
            await self._stop(dep)
            version = dep
            while version is not None:  # e.g. the image the docker executor built for it
                await self.executor.discard(version.spec)
                version = version.previous
        return dep

    async def scale(self, slug: str, count: int) -> None:
        """Starts or stops instances until the deployment has `count` of them, and keeps at least that many:
        the scaler may add instances above `count` on load, never go below it."""
        dep = self.live.get(slug)
        if dep is None:
            return
        dep.spec = replace(dep.spec, max_instances=count, min_instances=count)
        if self.replicas is not None:
            log.info("%s: scaled to %d replica(s) by its owner", slug, count)
            return await self.replicas.scale(dep, count)
        if dep.phase == "failed":
            return
        log.info("%s: scaled to %d instance(s) by its owner", slug, count)
        await self._resize(dep, count)

    def wake(self, slug: str) -> None:
        """Starts a chute scaled to zero because a request for it arrived (the gateway calls this)."""
        dep = self.live.get(slug)
        if dep is None or dep.stopping or dep.phase != "cold":
            return
        self.scaler.started(slug, time.monotonic())
        log.info("%s: waking from zero: a request arrived", slug)
        if self.replicas is not None:
            dep.phase = "starting"  # until the watch sees the pod: the lobby waits for it
            self._resizing[slug] = task = asyncio.create_task(self.replicas.scale(dep, max(1, dep.spec.min_instances)))
            task.add_done_callback(lambda _t: self._resizing.pop(slug, None))
            return
        self._grow(dep, max(1, dep.spec.min_instances))

    async def aclose(self) -> None:
        self._hold_pending = True  # nothing new starts while the host stops
        self.gpus.freeze()  # and gpus.json keeps the assignments for the next start
        for task in [self._scaling, *self._resizing.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.replicas is not None:
            await self.replicas.aclose()
        else:
            await asyncio.gather(*(self._stop(d) for d in list(self.live.values())))
        self.live.clear()
        await self._client.aclose()
        for client in self._socket_clients.values():
            await client.aclose()
        await self.executor.aclose()

    async def _bring_up(self, dep: LiveDeployment) -> None:
        spec = dep.spec
        build_log = spec.logs_dir / "build.log"
        try:
            await self.executor.prepare(spec, build_log)
        except ExecutorError as exc:
            dep.fail(exc.phase, str(exc), exc.log_tail)
            self._release_all(dep)
            await self._retire_previous(dep)
            return
        except Exception as exc:  # a broken executor must not take the host down
            log.exception("preparing %s failed", spec.slug)
            dep.fail("building", f"{type(exc).__name__}: {exc}", read_tail(build_log))
            self._release_all(dep)
            return
        dep.phase = "starting"
        for inst in dep.instances:
            if inst.gpus is not None and inst.task is None:
                self._start_instance(dep, inst)
        dep.refresh()

    async def _scale_loop(self) -> None:
        """Asks the scaler about every running deployment, every policy tick, and carries out its decisions."""
        while True:
            await asyncio.sleep(self.policy.tick)
            now = time.monotonic()
            for slug, dep in list(self.live.items()):
                # a chute still coming up (or waiting for GPUs) is neither idle nor loaded yet
                if dep.stopping or dep.previous is not None or dep.phase not in ("ready", "cold"):
                    continue
                if slug in self._resizing:
                    continue
                counters = self.counters.of(slug)
                decision = self.scaler.decide(
                    slug,
                    now,
                    running=len(dep.instances),
                    demand=counters.in_flight + counters.waiting,
                    requests=counters.requests,
                    bounds=dep.spec.scale_bounds,
                )
                if decision is not None:
                    self._carry_out(slug, dep, decision)

    def _carry_out(self, slug: str, dep: LiveDeployment, decision: Decision) -> None:
        running = len(dep.instances)
        log.info("%s: scaling from %d to %d instance(s): %s", slug, running, decision.target, decision.reason)
        task = asyncio.create_task(self._resize(dep, decision.target), name=f"resize {slug}")
        self._resizing[slug] = task
        task.add_done_callback(lambda _t: self._resizing.pop(slug, None))

    async def _resize(self, dep: LiveDeployment, count: int) -> None:
        """Adds instances, or takes the last ones out of the gateway's rotation, lets their requests finish
        and stops them."""
        if self.replicas is not None:
            return await self.replicas.scale(dep, count)
        if len(dep.instances) < count:
            self._grow(dep, count)
            return
        leaving = dep.instances[count:]
        del dep.instances[count:]
        dep.refresh()  # synchronously out of rotation: no new request can reach them
        dep.leaving.extend(leaving)  # until stopped: a host stopping meanwhile stops them with the rest
        await asyncio.gather(*(self._drain_and_stop(dep, inst) for inst in leaving))
        dep.refresh()

    def _grow(self, dep: LiveDeployment, count: int) -> None:
        while len(dep.instances) < count:
            used = {i.index for i in dep.instances} | {i.index for i in dep.leaving}
            inst = self._new_instance(dep, min(set(range(len(used) + 1)) - used))
            if dep.phase != "building" and inst.gpus is not None:
                self._start_instance(dep, inst)
        dep.refresh()

    async def _drain_and_stop(self, dep: LiveDeployment, inst: Instance) -> None:
        handle = inst.handle
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while handle is not None and handle.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self._stop_instance(inst)
        dep.leaving.remove(inst)

    def _new_instance(self, dep: LiveDeployment, index: int) -> Instance:
        """Adds instance number `index` to the deployment, placed on GPUs or pending until some are free."""
        inst = Instance(index=index, log_path=dep.spec.logs_dir / f"instance-{index}.log")
        dep.instances.append(inst)
        self._place(dep, inst)
        return inst

    def _place(self, dep: LiveDeployment, inst: Instance) -> None:
        spec = dep.spec
        holder = Holder(chute=spec.holder, slug=spec.slug, index=inst.index)
        inst.gpus = self.gpus.reserve(inst, holder, spec.node_selector)
        if inst.gpus is None:
            inst.phase, inst.waiting = "pending", self.gpus.why_not(spec.node_selector)
            log.info("%s#%d pending: %s", spec.slug, inst.index, inst.waiting)
        else:
            inst.phase, inst.waiting = "starting", None
            if inst.gpus:
                log.info("%s#%d placed on GPU(s) %s", spec.slug, inst.index, ", ".join(g.uuid for g in inst.gpus))

    def _start_instance(self, dep: LiveDeployment, inst: Instance) -> None:
        inst.task = asyncio.create_task(self._keep_running(dep, inst), name=f"{dep.spec.slug}#{inst.index}")

    def _release(self, inst: Instance) -> None:
        """Frees an instance's GPUs for good, and starts pending instances that now fit."""
        if self.gpus.release(inst):
            self._start_pending()

    def _release_all(self, dep: LiveDeployment) -> None:
        for inst in dep.instances:
            self._release(inst)

    def _start_pending(self) -> None:
        if self._hold_pending:
            return
        for dep in list(self.live.values()):
            if dep.stopping or dep.phase == "failed":
                continue
            for inst in dep.instances:
                if inst.gpus is None and inst.task is None:
                    self._place(dep, inst)
                    if inst.gpus is not None and dep.phase not in ("building", "stopped"):
                        self._start_instance(dep, inst)
            dep.refresh()

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
            if inst.handle is not None and inst.handle.uds in self._socket_clients:
                await self._socket_clients.pop(inst.handle.uds).aclose()
            if dep.stopping:
                inst.phase = "stopped"
            self._release(inst)
            dep.refresh()

    async def _run_once(self, dep: LiveDeployment, inst: Instance) -> str:
        """Starts the instance, waits until it is ready, watches it; returns why it ended."""
        rotate_if_large(inst.log_path)
        _mark(inst, f"starting instance {inst.index} (version {dep.spec.version})")
        inst.phase = "starting"
        started = time.monotonic()
        inst.handle = await self.executor.start(dep.spec, inst.index, inst.log_path, gpus=inst.gpus or ())
        outcome = await self._wait_ready(inst)
        if outcome == "ready":
            counters = self.counters.of(dep.spec.slug)
            counters.cold_starts += 1
            counters.cold_start_seconds += time.monotonic() - started
            inst.ever_ready = True
            inst.phase = "ready"
            self.scaler.started(dep.spec.slug, time.monotonic())  # a chute deployed or woken gets its full idle time
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
            if handle.uds:
                resp = await self._socket_client(handle.uds).get("http://instance/_ready")
            else:
                resp = await self._client.get(f"http://{handle.host}:{handle.port}/_ready")
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    def _socket_client(self, uds: str) -> httpx.AsyncClient:
        """Returns the health-check client of one instance's Unix socket (made once per socket path)."""
        client = self._socket_clients.get(uds)
        if client is None:
            transport = httpx.AsyncHTTPTransport(uds=uds)
            client = httpx.AsyncClient(transport=transport, timeout=self._check_timeout, trust_env=False)
            self._socket_clients[uds] = client
        return client

    async def _retire_previous(self, dep: LiveDeployment) -> None:
        """Stops the versions this one replaces (a chain, after quick redeploys) and removes their files
        (once no job runs on them)."""
        old, dep.previous = dep.previous, None
        retired = []
        while old is not None:
            retired.append(old)
            old = old.previous
        if retired:
            await self._stop(retired[0])
        for version in retired:
            if version.spec.directory != dep.spec.directory:
                await self.files.retire(version.spec)

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
        await asyncio.gather(*(self._stop_instance(i) for i in [*dep.instances, *dep.leaving]))
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
        self._release(inst)


def _mark(inst: Instance, text: str) -> None:
    inst.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(inst.log_path, "a") as f:
        f.write(f"--- {datetime.now(UTC):%Y-%m-%d %H:%M:%S} {text}\n")
