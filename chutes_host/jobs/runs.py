"""Jobs on the host: each run is placed on GPUs like an instance, started through the executor with a
directory of its own, watched until it ends (or its timeout), and recorded with its outputs kept."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from chutes_host.config import HostConfig
from chutes_host.deploy.spec import DeploymentSpec
from chutes_host.executors.base import ExecutorError, InstanceHandle
from chutes_host.jobs.files import read_result, settle_outputs
from chutes_host.jobs.launch import JobLaunch
from chutes_host.sandbox.tenantfiles import TenantFileError
from chutes_host.scheduling.holdings import Holder
from chutes_host.scheduling.supervisor import Supervisor
from chutes_host.store.db import Database
from chutes_host.store.models import JobRecord, utcnow

log = logging.getLogger("chutes.host")

FINISHED = frozenset({"succeeded", "failed", "cancelled", "timed_out", "lost"})
ACTIVE = frozenset({"queued", "running"})
POLL = 0.2
QUEUE_RETRY = 1.0
# the runner's exit codes (chutes.jobrun)
BAD_INPUT, STARTUP_FAILURE, TIMED_OUT = 2, 3, 124
LOST = "the host stopped while the job ran; its logs and the outputs it wrote so far are kept"
JOB_HOST = re.compile(r"^(?P<slug>.+)-job-(?P<short>[0-9a-f]{10})$")


@dataclass(eq=False)
class LiveJob:
    """A queued or running job, as the supervisor of jobs and the gateway see it."""

    id: str
    owner_id: int
    slug: str
    name: str
    timeout: int | None
    directory: Path
    ports: list[dict[str, Any]] = field(default_factory=list)
    waiting: str | None = None
    gpus: tuple = ()
    handle: InstanceHandle | None = None
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def short(self) -> str:
        return self.id[:10]

    @property
    def work_dir(self) -> Path:
        return self.directory / "work"

    @property
    def log_path(self) -> Path:
        return self.directory / "job.log"


class JobRunner:
    """Owns the host's queued and running jobs: starts each once GPUs are free, enforces its timeout,
    stops it on cancel, and records how it ended."""

    def __init__(self, config: HostConfig, db: Database, supervisor: Supervisor) -> None:
        self.config = config
        self.db = db
        self.supervisor = supervisor
        self.live: dict[str, LiveJob] = {}
        self._freed = asyncio.Event()
        self._closing = False

    @property
    def refusal(self) -> str | None:
        """Says why this host's executor cannot run jobs (None when it can)."""
        if self.supervisor.executor.capabilities.runs_jobs:
            return None
        return f"the {self.supervisor.executor.name} executor of this host does not run jobs; use process or docker"

    @property
    def jobs_dir(self) -> Path:
        return self.config.data_dir / "jobs"

    def directory(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def restore(self) -> None:
        """Brings back the jobs a previous run of the host left: queued ones queue again; running ones
        are reported lost (their instance died with that host), their logs and partial outputs kept."""
        with self.db.session() as session:
            rows = session.execute(select(JobRecord).where(JobRecord.status.in_(ACTIVE))).scalars().all()
            for row in rows:
                if row.status == "running":
                    row.status, row.finished_at = "lost", utcnow()
                    size, problem = settle_outputs(self.directory(row.id), max_entries=self.config.job_max_outputs)
                    row.reason, row.output_bytes = f"{LOST}; {problem}" if problem else LOST, size
                    log.warning("job %s of %s: lost (the host restarted while it ran)", row.short, row.slug)
                else:
                    self._queue(row)
                    log.info("job %s of %s: queued again after the host restarted", row.short, row.slug)

    def submit(self, row: JobRecord) -> LiveJob:
        """Queues a recorded job (its directory prepared); it starts once its chute and GPUs allow."""
        return self._queue(row)

    def _queue(self, row: JobRecord) -> LiveJob:
        dep = self.supervisor.route(row.slug)
        jobs = dep.spec.manifest.get("jobs") or [] if dep is not None else []
        declared = next((j for j in jobs if isinstance(j, dict) and j.get("name") == row.name), {})
        job = LiveJob(
            id=row.id,
            owner_id=row.owner_id,
            slug=row.slug,
            name=row.name,
            timeout=row.timeout,
            directory=self.directory(row.id),
            ports=[p for p in declared.get("ports") or [] if p.get("proto") != "udp"],
        )
        self.live[job.id] = job
        job.task = asyncio.create_task(self._run(job), name=f"job {job.short}")
        return job

    def route(self, host_slug: str) -> LiveJob | None:
        """Takes the slug part of a Host header, e.g. 'alice-web-job-1a2b3c4d5e', and returns its running job."""
        found = JOB_HOST.match(host_slug)
        if found is None:
            return None
        for job in self.live.values():
            if job.short == found["short"] and job.slug == found["slug"]:
                return job
        return None

    async def cancel(self, job_id: str) -> bool:
        """Asks a queued or running job to stop (SIGTERM, a grace period, then SIGKILL); returns whether it was live."""
        job = self.live.get(job_id)
        if job is None:
            return False
        job.cancel.set()
        if job.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(job.task)
        return True

    def freed(self) -> None:
        """Wakes queued jobs: GPUs may have become free."""
        self._freed.set()

    async def aclose(self) -> None:
        """Stops every running job (recorded lost: the host stopped); queued ones stay queued for the next start."""
        self._closing = True
        tasks = [j.task for j in self.live.values() if j.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self, job: LiveJob) -> None:
        spec: DeploymentSpec | None = None
        try:
            spec = await self._wait_for_place(job)
            if spec is None:
                return
            self.supervisor.files.hold(spec)  # a redeploy now keeps this version's files until the job ends
            await self._start_and_watch(job, spec)
        except asyncio.CancelledError:
            if job.handle is not None:
                with contextlib.suppress(Exception):
                    await self.supervisor.executor.stop(job.handle)
                await self._finish(job, "lost", reason=LOST)
            raise
        except Exception as exc:  # a broken executor must not take the host down, nor leave the job running
            log.exception("job %s of %s failed unexpectedly", job.short, job.slug)
            if job.handle is not None:
                with contextlib.suppress(Exception):
                    await self.supervisor.executor.stop(job.handle)
            await self._finish(job, "failed", reason=f"the host could not run it: {type(exc).__name__}: {exc}")
        finally:
            self.live.pop(job.id, None)
            if self.supervisor.gpus.release(job) and not self._closing:
                self.supervisor.gpus_freed()
                self.freed()
            if spec is not None:
                await self.supervisor.files.release(spec)

    async def _wait_for_place(self, job: LiveJob) -> DeploymentSpec | None:
        """Waits until the chute is built and GPUs are free; returns its spec (None when the job ended queued)."""
        while True:
            if job.cancel.is_set():
                await self._finish(job, "cancelled", reason="cancelled while queued")
                return None
            dep = self.supervisor.route(job.slug)
            if dep is None:
                await self._finish(job, "failed", reason=f"chute {job.slug!r} is not deployed on this host any more")
                return None
            if dep.phase == "failed" and dep.failed_phase == "building":
                await self._finish(job, "failed", reason=f"chute {job.slug!r} failed to build: {dep.error}")
                return None
            if dep.phase == "building":
                await self._set_waiting(job, f"waiting for chute {job.slug!r} to finish building")
            else:
                spec = dep.spec
                holder = Holder(chute=f"{spec.holder} (job {job.short})", slug=f"{spec.slug}-job-{job.short}", index=0)
                gpus = self.supervisor.gpus.reserve(job, holder, spec.node_selector)
                if gpus is not None:
                    job.gpus = gpus
                    return spec
                await self._set_waiting(job, self.supervisor.gpus.why_not(spec.node_selector))
            self._freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait_any(job), QUEUE_RETRY)

    async def _wait_any(self, job: LiveJob) -> None:
        freed = asyncio.ensure_future(self._freed.wait())
        cancelled = asyncio.ensure_future(job.cancel.wait())
        try:
            await asyncio.wait({freed, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            freed.cancel()
            cancelled.cancel()

    async def _set_waiting(self, job: LiveJob, why: str) -> None:
        if job.waiting == why:
            return
        job.waiting = why
        log.info("job %s of %s queued: %s", job.short, job.slug, why)
        await self._update(job.id, reason=why)

    async def _update(self, job_id: str, **fields: Any) -> None:
        """Sets fields of a job's row, off the event loop (the gateway serves on it)."""

        def write() -> None:
            with self.db.session() as session:
                row = session.get(JobRecord, job_id)
                if row is not None:
                    for name, value in fields.items():
                        setattr(row, name, value)

        await asyncio.to_thread(write)

    async def _start_and_watch(self, job: LiveJob, spec: DeploymentSpec) -> None:
        executor = self.supervisor.executor
        mark(job.log_path, f"starting job {job.name} ({job.short}) on chute {spec.slug} version {spec.version}")
        try:
            await executor.prepare(spec, spec.logs_dir / "build.log")
            launch = JobLaunch(id=job.id, name=job.name, work_dir=job.work_dir)
            job.handle = await executor.start(spec, 0, job.log_path, gpus=job.gpus, job=launch)
        except ExecutorError as exc:
            await self._finish(job, "failed", reason=f"the job could not start ({exc.phase}): {exc}")
            return
        started = time.monotonic()
        job.waiting = None
        await self._update(
            job.id,
            status="running",
            started_at=utcnow(),
            reason=None,
            version=spec.version,
            pid=job.handle.pid,
            container_id=job.handle.container_id,
            gpus_json=json.dumps([g.describe() for g in job.gpus]),
        )
        on = f" on GPU(s) {[g.index for g in job.gpus]}" if job.gpus else ""
        log.info("job %s of %s running%s", job.short, job.slug, on)
        deadline = started + job.timeout if job.timeout else None
        stopped_by = None
        while True:
            code = await executor.exit_code(job.handle)
            if code is not None:
                break
            if job.cancel.is_set():
                stopped_by = "cancelled"
            elif self.supervisor.route(job.slug) is None:
                stopped_by = "deleted"
            elif deadline is not None and time.monotonic() >= deadline:
                stopped_by = "timed_out"
            if stopped_by is not None:
                why = {"cancelled": "cancelled", "deleted": "its chute was deleted"}.get(
                    stopped_by, f"timed out after {job.timeout} s"
                )
                mark(job.log_path, f"{why}: stopping the job")
                await executor.stop(job.handle)  # SIGTERM, a grace period, then SIGKILL
                code = await executor.exit_code(job.handle)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.cancel.wait(), POLL)
        if stopped_by is None:
            await executor.stop(job.handle)  # removes its socket, or its container
        result, unusable = {}, None
        try:
            result = await asyncio.to_thread(read_result, job.directory)
        except TenantFileError as exc:  # e.g. a FIFO: refused unopened, so nothing waits on it
            unusable = f"the host did not use its result: {exc} (the runtime writes result.json from what it returns)"
        status, reason = outcome(code, stopped_by, result, job.timeout, unusable=unusable)
        mark(job.log_path, f"job {job.name} {status} (exit code {code})")
        await self._finish(job, status, reason=reason, exit_code=code, result=result.get("result"))

    async def _finish(
        self, job: LiveJob, status: str, *, reason: str | None, exit_code: int | None = None, result: Any = None
    ) -> None:
        size, problem = await asyncio.to_thread(settle_outputs, job.directory, max_entries=self.config.job_max_outputs)
        if problem is not None:
            mark(job.log_path, f"outputs removed: {problem}")
            status = "failed" if status == "succeeded" else status
            reason = f"{reason}; {problem}" if reason else problem
        fields = dict(status=status, reason=reason, exit_code=exit_code, finished_at=utcnow(), output_bytes=size)
        if result is not None:
            fields["result_json"] = json.dumps(result)
        await self._update(job.id, **fields)
        log.info("job %s of %s %s%s", job.short, job.slug, status, f": {reason}" if reason else "")


def outcome(
    code: int | None, stopped_by: str | None, result: dict, timeout: int | None, *, unusable: str | None = None
) -> tuple[str, str | None]:
    """Takes how a job's instance ended (`unusable` says why its result.json was not read), and returns its
    status and the reason shown with it."""
    error = result.get("error")
    if stopped_by == "cancelled":
        return "cancelled", "cancelled by its owner"
    if stopped_by == "deleted":
        return "cancelled", "its chute was deleted while it ran"
    if stopped_by == "timed_out" or code == TIMED_OUT:
        return "timed_out", f"ran past its timeout of {timeout} s"
    if unusable:
        return "failed", unusable
    if code == 0 and result.get("status") == "succeeded":
        return "succeeded", None
    if code == 0:
        return "failed", "the job exited without recording a result"
    if code == BAD_INPUT:
        return "failed", error or "the job's arguments are invalid"
    if code == STARTUP_FAILURE:
        return "failed", f"a startup hook failed: {error}" if error else "a startup hook failed; see its logs"
    if error:
        return "failed", error
    return "failed", f"its instance exited with code {code}; see `chutes jobs logs`"


def new_job_id() -> str:
    return uuid.uuid4().hex


def mark(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(f"--- {datetime.now(UTC):%Y-%m-%d %H:%M:%S} {text}\n")


def remove_job_files(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
