"""Jobs served by a local dev server (`chutes run`): start one in the server's own process, see it, cancel it.

    POST   /_jobs/{name}                 start (body: the JSON arguments) -> 202 {"id", "status", "output_dir"}
    GET    /_jobs/{id}                   status, result or error, output files
    GET    /_jobs/{id}/outputs/{path}    one output file
    DELETE /_jobs/{id}                   cancel

A host never serves these: there a job runs on an instance of its own (`chutes jobs start`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chutes.responses import send_json
from chutes.types import Receive, Scope, Send

PREFIX = "/_jobs/"


@dataclass(eq=False)
class LocalRun:
    id: str
    name: str
    work: Path
    status: str = "running"
    result: Any = None
    error: str | None = None
    task: asyncio.Task | None = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        outputs = self.work / "outputs"
        files = sorted(str(p.relative_to(outputs)) for p in outputs.rglob("*") if p.is_file())
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "output_dir": str(outputs),
            "outputs": files,
        }


class LocalJobs:
    """Plain ASGI for /_jobs/...: runs a chute's jobs in the serving process, after its startup hooks."""

    def __init__(self, chute: Any, root: Path) -> None:
        self.chute = chute
        self.root = root
        self.runs: dict[str, LocalRun] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = scope["path"][len(PREFIX) :].split("/", 2)
        method = scope["method"]
        if method == "POST" and len(parts) == 1:
            await self.start(parts[0], receive, send)
            return
        run = self.runs.get(parts[0])
        if run is None:
            await send_json(send, 404, {"detail": f"no local job run {parts[0]!r}"})
            return
        if method == "GET" and len(parts) == 1:
            await send_json(send, 200, run.describe())
            return
        if method == "DELETE" and len(parts) == 1:
            if run.task is not None and not run.task.done():
                run.task.cancel()
                await asyncio.gather(run.task, return_exceptions=True)
            await send_json(send, 200, run.describe())
            return
        if method == "GET" and len(parts) == 3 and parts[1] == "outputs":
            await self.send_output(run, parts[2], send)
            return
        await send_json(send, 404, {"detail": f"no such job route {method} {scope['path']}"})

    async def start(self, name: str, receive: Receive, send: Send) -> None:
        from chutes.jobrun import JobInputError, bind_args, find_job, prepare_dirs

        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            job = find_job(self.chute, name)
            kwargs = bind_args(job, body)
        except JobInputError as exc:
            await send_json(send, 404 if "has no job" in str(exc) else 422, {"detail": str(exc)})
            return
        run_id = uuid.uuid4().hex
        run = LocalRun(run_id, name, (self.root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{run_id[:6]}").resolve())
        outputs, inputs = prepare_dirs(run.work)
        run.task = asyncio.create_task(self.run(run, job, kwargs, outputs, inputs))
        self.runs[run_id] = run
        await send_json(send, 202, run.describe())

    async def run(self, run: LocalRun, job: Any, kwargs: dict, outputs: Path, inputs: Path) -> None:
        from chutes.jobrun import call_in_task

        try:
            run.result = await asyncio.wait_for(call_in_task(self.chute, job, kwargs, outputs, inputs), job.timeout)
            run.status = "succeeded"
        except asyncio.CancelledError:
            run.status = "cancelled"
        except TimeoutError:
            run.status, run.error = "timed_out", f"timed out after {job.timeout} s"
        except Exception as exc:
            run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"

    async def send_output(self, run: LocalRun, relative: str, send: Send) -> None:
        outputs = (run.work / "outputs").resolve()
        path = (outputs / relative).resolve()
        if not path.is_file() or outputs not in path.parents:
            await send_json(send, 404, {"detail": f"job run {run.id} has no output {relative!r}"})
            return
        data = path.read_bytes()
        headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(len(data)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})
