"""The jobs part of the control API: start a chute's job, see it, follow its logs, cancel it, fetch its outputs."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from chutes_host.control.shared import UserDep
from chutes_host.deploy.deployments import find_own_deployment
from chutes_host.errors import JobError, TenantFileError
from chutes_host.jobs.files import open_output, page_outputs
from chutes_host.jobs.inputs import check_start_args, read_start_request
from chutes_host.jobs.runs import FINISHED, JobRunner, new_job_id, remove_job_files
from chutes_host.observability.logs import read_tail
from chutes_host.state import HostState
from chutes_host.store.models import JobRecord, User

# the start request streams its uploads, so the control API's small-body limit does not apply to it
START_PATH = re.compile(r"^/api/v1/chutes/[^/]+/jobs/[^/]+$")
READ_CHUNK = 64 * 1024
OUTPUTS_PAGE = 1000  # outputs listed by default in one answer; ?offset= and ?limit= page through the rest


class JobOut(BaseModel):
    id: str
    short: str
    chute: str
    name: str
    status: str = Field(description="queued, running, succeeded, failed, cancelled, timed_out or lost")
    reason: str | None = Field(None, description="why it is queued, or why it did not succeed")
    exit_code: int | None = None
    result: Any = None
    timeout: int | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    gpus: list[dict[str, Any]] = Field(default_factory=list)
    url: str | None = Field(None, description="where its ports answer while it runs (its owner's key only)")
    output_bytes: int = 0
    outputs: list[dict[str, Any]] = Field(default_factory=list, description="one page of its output files")
    outputs_next: int | None = Field(None, description="the offset (?offset=) of the next page of outputs")
    outputs_note: str | None = Field(None, description="why the outputs are not all listed")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


def is_job_start(method: str, path: str) -> bool:
    return method == "POST" and START_PATH.match(path) is not None


def create_jobs_router(state: HostState, runner: JobRunner) -> APIRouter:
    """Returns the routes under /api/v1 for jobs; every one acts on the caller's own jobs only."""
    router = APIRouter(tags=["jobs"])
    config, db = state.config, state.db

    def describe(row: JobRecord, *, outputs: tuple[int, int] | None = None) -> JobOut:
        """Takes a job's row (and the offset and limit of the page of outputs to list), and returns its answer;
        listing outputs walks the tenant's files, so callers are in a worker thread."""
        live = runner.live.get(row.id)
        url = None
        if row.status == "running":
            manifest_job = job_manifest(state, row.slug, row.name)
            if manifest_job and manifest_job.get("ports"):
                url = config.chute_url(f"{row.slug}-job-{row.short}")
        page, after, note = [], None, None
        if outputs is not None:
            offset, limit = outputs
            cap = config.job_max_outputs
            page, after, note = page_outputs(runner.directory(row.id), offset=offset, limit=limit, max_entries=cap)
        return JobOut(
            id=row.id,
            short=row.short,
            chute=row.slug,
            name=row.name,
            status=row.status,
            reason=(live.waiting if live is not None and row.status == "queued" else None) or row.reason,
            exit_code=row.exit_code,
            result=json.loads(row.result_json) if row.result_json else None,
            timeout=row.timeout,
            args=json.loads(row.args_json or "{}"),
            gpus=json.loads(row.gpus_json) if row.gpus_json else [],
            url=url,
            output_bytes=row.output_bytes or 0,
            outputs=page,
            outputs_next=after,
            outputs_note=note,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )

    def own_job(user: User, ref: str, chute: str | None = None) -> JobRecord:
        with db.session() as session:
            return find_own_job(session, user, ref, chute=own_slug(session, user, chute) if chute else None)

    @router.post("/chutes/{ref}/jobs/{name}", status_code=202, response_model=JobOut)
    async def start_job(ref: str, name: str, request: Request, user: UserDep) -> JobOut:
        """Starts a job of a chute on an instance of its own. The body is the job's JSON arguments, or a
        multipart form with the arguments in the field `args` and files to put in its input_dir (upload=True)."""

        def chute_of() -> tuple[str, dict[str, Any]]:
            with db.session() as session:
                row = find_own_deployment(session, user, ref)
                return row.slug, row.manifest

        slug, manifest = await run_in_threadpool(chute_of)
        jobs = {j.get("name"): j for j in manifest.get("jobs") or [] if isinstance(j, dict)}
        spec = jobs.get(name)
        if spec is None:
            have = ", ".join(sorted(jobs)) or "none; define one with @chute.job() and deploy again"
            raise JobError(f"chute {slug!r} has no job {name!r}; its jobs: {have}", status=404)
        if runner.refusal is not None:
            raise JobError(runner.refusal, status=501)
        await run_in_threadpool(check_quota, user)
        job_id = new_job_id()
        directory = runner.directory(job_id)
        try:
            args = await read_start_request(request, spec, directory / "work", limit=config.max_bundle_bytes)
            args_json = await run_in_threadpool(check_start_args, spec, args)  # up to a MiB of JSON: off the loop
            (directory / "work" / "args.json").write_text(args_json)

            def record() -> JobRecord:
                with db.session() as session:
                    job = JobRecord(
                        id=job_id,
                        owner_id=user.id,
                        slug=slug,
                        name=name,
                        status="queued",
                        args_json=args_json,
                        timeout=spec.get("timeout"),
                    )
                    session.add(job)
                    session.flush()
                    return job

            job_row = await run_in_threadpool(record)
        except BaseException:
            remove_job_files(directory)
            raise
        runner.submit(job_row)
        return describe(job_row)

    def check_quota(user: User) -> None:
        with db.session() as session:
            used = session.execute(
                select(func.coalesce(func.sum(JobRecord.output_bytes), 0)).where(JobRecord.owner_id == user.id)
            ).scalar_one()
        quota = config.job_quota_bytes
        if used >= quota:
            raise JobError(
                f"your jobs keep {used / 2**20:.1f} MiB of outputs, this host's quota per user is "
                f"{quota / 2**20:.0f} MiB; download what you need and delete old jobs with `chutes jobs delete ID`",
                status=507,
            )

    @router.get("/jobs", response_model=list[JobOut])
    def list_jobs(user: UserDep, chute: str | None = None) -> list[JobOut]:
        """Lists your jobs, newest first (of one chute with `chute`)."""
        with db.session() as session:
            stmt = select(JobRecord).where(JobRecord.owner_id == user.id)
            if chute:
                stmt = stmt.where(JobRecord.slug == own_slug(session, user, chute))
            rows = session.execute(stmt.order_by(JobRecord.created_at.desc())).scalars().all()
        return [describe(r) for r in rows]

    @router.get("/chutes/{ref}/jobs", response_model=list[JobOut])
    def list_chute_jobs(ref: str, user: UserDep) -> list[JobOut]:
        return list_jobs(user, chute=ref)

    @router.get("/jobs/{job_id}", response_model=JobOut)
    def get_job(job_id: str, user: UserDep, offset: OffsetQuery = 0, limit: LimitQuery = OUTPUTS_PAGE) -> JobOut:
        """Returns a job's status, result and one page of its outputs (`outputs_next` is the next page's offset)."""
        return describe(own_job(user, job_id), outputs=(offset, limit))

    @router.get("/chutes/{ref}/jobs/{job_id}", response_model=JobOut)
    def get_chute_job(
        ref: str, job_id: str, user: UserDep, offset: OffsetQuery = 0, limit: LimitQuery = OUTPUTS_PAGE
    ) -> JobOut:
        return describe(own_job(user, job_id, ref), outputs=(offset, limit))

    @router.delete("/jobs/{job_id}")
    async def delete_job(job_id: str, user: UserDep) -> dict[str, Any]:
        """Cancels a queued or running job (SIGTERM, a grace, then SIGKILL); deletes a finished one and its files."""
        row = await run_in_threadpool(own_job, user, job_id)
        return await cancel_or_delete(row)

    @router.delete("/chutes/{ref}/jobs/{job_id}")
    async def delete_chute_job(ref: str, job_id: str, user: UserDep) -> dict[str, Any]:
        row = await run_in_threadpool(own_job, user, job_id, ref)
        return await cancel_or_delete(row)

    async def cancel_or_delete(row: JobRecord) -> dict[str, Any]:
        if row.status not in FINISHED:
            await runner.cancel(row.id)

            def status_of() -> str:
                with db.session() as session:
                    return session.get(JobRecord, row.id).status

            return {"cancelled": row.id, "status": await run_in_threadpool(status_of)}

        def delete() -> None:
            with db.session() as session:
                session.delete(session.get(JobRecord, row.id))
            shutil.rmtree(runner.directory(row.id), ignore_errors=True)

        await run_in_threadpool(delete)
        return {"deleted": row.id}

    @router.get("/jobs/{job_id}/logs", response_class=StreamingResponse)
    async def job_logs(
        job_id: str, user: UserDep, tail: Annotated[int, Query(ge=0, le=10_000)] = 1000, follow: bool = False
    ) -> StreamingResponse:
        """Streams a job's log (text); `follow` keeps streaming until the job ends."""
        row = await run_in_threadpool(own_job, user, job_id)
        return StreamingResponse(stream_log(row.id, tail=tail, follow=follow), media_type="text/plain; charset=utf-8")

    @router.get("/chutes/{ref}/jobs/{job_id}/logs", response_class=StreamingResponse)
    async def chute_job_logs(
        ref: str, job_id: str, user: UserDep, tail: Annotated[int, Query(ge=0, le=10_000)] = 1000, follow: bool = False
    ) -> StreamingResponse:
        row = await run_in_threadpool(own_job, user, job_id, ref)
        return StreamingResponse(stream_log(row.id, tail=tail, follow=follow), media_type="text/plain; charset=utf-8")

    async def stream_log(job_id: str, *, tail: int, follow: bool) -> AsyncIterator[bytes]:
        path = runner.directory(job_id) / "job.log"
        text = await run_in_threadpool(read_tail, path, tail)
        if text:
            yield (text + "\n").encode()
        offset = await run_in_threadpool(size_of, path)
        while follow and not state.stopping.is_set():
            live = job_id in runner.live
            # however fast the job writes, a chunk at a time, each read in a worker thread
            data = await run_in_threadpool(read_from, path, offset)
            if data:
                offset += len(data)
                yield data
                continue
            if not live:
                return
            await asyncio.sleep(0.2)

    @router.get("/jobs/{job_id}/outputs/{path:path}")
    async def download_output(job_id: str, path: str, user: UserDep) -> StreamingResponse:
        """Downloads one file the job wrote to its output_dir."""
        row = await run_in_threadpool(own_job, user, job_id)
        try:
            fd, size = open_output(runner.directory(row.id), path)
        except FileNotFoundError:
            detail = f"job {row.short} has no output {path!r}; `chutes jobs get {row.short}` lists them"
            raise JobError(detail, status=404) from None
        except TenantFileError as exc:  # the job made it: a FIFO, a link, a device
            detail = f"job {row.short}'s output {exc}; only regular files are downloaded (`chutes jobs get` lists them)"
            raise JobError(detail, status=404) from None

        def chunks():
            with open(fd, "rb") as f:
                while chunk := f.read(READ_CHUNK):
                    yield chunk

        headers = {"content-length": str(size)}
        return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)

    return router


OffsetQuery = Annotated[int, Query(ge=0, description="the first output listed")]
LimitQuery = Annotated[int, Query(ge=1, le=10_000, description="how many outputs to list at most")]


def size_of(path: Path) -> int:
    """Returns the size of a file, 0 when it does not exist."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def read_from(path: Path, offset: int) -> bytes:
    """Returns up to READ_CHUNK bytes of a file from `offset` (b"" at its end or when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(READ_CHUNK)
    except FileNotFoundError:
        return b""


def job_manifest(state: HostState, slug: str, name: str) -> dict[str, Any] | None:
    live = state.supervisor.route(slug)
    if live is None:
        return None
    return next((j for j in live.spec.manifest.get("jobs") or [] if j.get("name") == name), None)


def own_slug(session, user: User, ref: str) -> str:
    return find_own_deployment(session, user, ref).slug


def find_own_job(session, user: User, ref: str, *, chute: str | None = None) -> JobRecord:
    """Finds a job of this user by id or by an unambiguous id prefix; 404 otherwise (others' jobs included)."""
    ref = ref.lower()
    missing = JobError(f"no job {ref!r}; list yours with `chutes jobs list`", status=404)
    if not re.fullmatch(r"[0-9a-f]{6,32}", ref):
        raise missing
    stmt = select(JobRecord).where(JobRecord.owner_id == user.id, JobRecord.id.startswith(ref))
    if chute is not None:
        stmt = stmt.where(JobRecord.slug == chute)
    rows = session.execute(stmt.limit(2)).scalars().all()
    if not rows:
        raise missing
    if len(rows) > 1:
        raise JobError(f"more than one of your jobs starts with {ref!r}; give more of its id", status=409)
    return rows[0]
