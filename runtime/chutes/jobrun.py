"""The job entrypoint: `python -m chutes.jobrun REF NAME --dir DIR` runs one job of a chute once.

DIR holds `args.json` (the JSON arguments), `inputs/` (uploaded files) and receives `outputs/` (what
the job writes) and `result.json` (its return value, or its error). The exit code says how it ended.
While the job runs, its declared ports are served on --fd/--uds/--port by a small HTTP proxy, so
that a host can reach them from outside the job's own network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chutes.exceptions import ChutesError, StartupError
from chutes.job import INPUT_DIR_ENV, JOB_ID_ENV, OUTPUT_DIR_ENV, Job
from chutes.types import Receive, Scope, Send

SUCCEEDED = 0
FAILED = 1
BAD_INPUT = 2
STARTUP_FAILURE = 3
TIMED_OUT = 124  # as coreutils' `timeout` says it
PORT_HEADER = b"x-chutes-job-port"


class JobInputError(ChutesError):
    """The job does not exist, or its arguments do not validate; the message says which and how to fix it."""


def find_job(chute: Any, name: str) -> Job:
    """Returns the chute's job `name`, or raises JobInputError listing the jobs it has."""
    job = chute.jobs.get(name)
    if job is None:
        have = ", ".join(sorted(chute.jobs)) or "none; define one with @chute.job()"
        raise JobInputError(f"chute {chute.slug!r} has no job {name!r}; its jobs: {have}")
    return job


def bind_args(job: Job, args: bytes) -> dict[str, Any]:
    """Takes a job and its JSON arguments, and returns the keyword arguments, or raises JobInputError."""
    try:
        return job.bind(args or b"{}")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(body)'}: {e['msg']}" for e in exc.errors())
        fields = ", ".join(job.input_fields) or "none"
        raise JobInputError(f"the arguments of {job.where} are invalid: {problems} (it takes: {fields})") from None


class PortProxy:
    """Plain ASGI: forwards each request to one of the job's ports on 127.0.0.1 (chosen by the
    X-Chutes-Job-Port header, by name or number; the first declared port by default)."""

    def __init__(self, job: Job) -> None:
        from chutes.proxy import Proxy

        self.job = job
        self.ports = {p.name: p.port for p in job.ports if p.proto != "udp"}
        self.default = next(iter(self.ports.values()), None)
        self.proxy = Proxy(read_timeout=3600.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from chutes.responses import send_json

        if scope["type"] != "http":
            return
        wanted = next((v.decode("latin-1") for n, v in scope["headers"] if n == PORT_HEADER), None)
        port = self.default
        if wanted is not None:
            port = self.ports.get(wanted) or (int(wanted) if wanted.isdigit() else None)
            if port not in self.ports.values():
                named = ", ".join(f"{n} ({p})" for n, p in self.ports.items())
                await send_json(send, 400, {"detail": f"the job has no port {wanted!r}; its ports: {named}"})
                return
        if port is None:  # every declared port is UDP: nothing takes HTTP
            declared = ", ".join(f"{p.name} ({p.port}/{p.proto})" for p in self.job.ports)
            detail = f"the job has no TCP port to forward to (its ports: {declared}); declare a tcp or http Port"
            await send_json(send, 404, {"detail": detail})
            return
        await self.proxy.forward(scope, receive, send, host="127.0.0.1", port=port)


class PortServer:
    """Serves a PortProxy on an already bound socket, on the running loop, without uvicorn's signal handling."""

    def __init__(self, job: Job, sock: socket.socket) -> None:
        import uvicorn

        from chutes.serve import build_log_config

        self.app = PortProxy(job)
        self.sock = sock
        config = uvicorn.Config(self.app, lifespan="off", access_log=False, log_config=build_log_config("warning"))
        config.load()
        self.server = uvicorn.Server(config)
        self.server.lifespan = config.lifespan_class(config)  # what Server.serve sets before startup
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.server.startup(sockets=[self.sock])
        self.task = asyncio.create_task(self.server.main_loop())

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task
            await self.server.shutdown(sockets=[self.sock])
        await self.app.proxy.aclose()


def prepare_dirs(work: Path) -> tuple[Path, Path]:
    """Creates DIR/outputs (and DIR/inputs if missing); returns both."""
    outputs, inputs = work / "outputs", work / "inputs"
    outputs.mkdir(parents=True, exist_ok=True)
    inputs.mkdir(parents=True, exist_ok=True)
    return outputs, inputs


def write_result(work: Path, data: dict[str, Any]) -> None:
    from pydantic_core import to_jsonable_python

    text = json.dumps(data, default=lambda v: to_jsonable_python(v, fallback=repr))
    tmp = work / ".result.json.tmp"
    tmp.write_text(text)
    os.replace(tmp, work / "result.json")


async def run_job(chute: Any, job: Job, kwargs: dict[str, Any], work: Path, sock: socket.socket | None = None) -> int:
    """Runs the startup hooks, the job once (within its timeout), the shutdown hooks; returns the exit code.

    SIGTERM or SIGINT cancels the job (its shutdown hooks still run) and exits 128 + the signal's number.
    """
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[int] = loop.create_future()

    def on_signal(signum: int) -> None:
        if not stopped.done():
            stopped.set_result(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    outputs, inputs = prepare_dirs(work)
    os.environ[OUTPUT_DIR_ENV], os.environ[INPUT_DIR_ENV] = str(outputs), str(inputs)
    ports = PortServer(job, sock) if sock is not None and job.ports else None
    lifecycle = chute._lifecycle
    try:
        try:
            await lifecycle.start(chute)
        except StartupError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            write_result(work, {"status": "failed", "error": str(exc).splitlines()[0]})
            return STARTUP_FAILURE
        if ports is not None:
            await ports.start()
        print(f"job {job.name} started", file=sys.stderr, flush=True)
        task = asyncio.ensure_future(call_in_task(chute, job, kwargs, outputs, inputs))
        done, _ = await asyncio.wait({task, stopped}, timeout=job.timeout, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            if stopped.done():
                signum = stopped.result()
                print(f"job {job.name} cancelled by {signal.Signals(signum).name}", file=sys.stderr, flush=True)
                write_result(work, {"status": "cancelled", "error": f"stopped by {signal.Signals(signum).name}"})
                return 128 + signum
            print(f"job {job.name} timed out after {job.timeout} s", file=sys.stderr, flush=True)
            write_result(work, {"status": "timed_out", "error": f"timed out after {job.timeout} s"})
            return TIMED_OUT
        try:
            result = task.result()
        except Exception as exc:
            traceback.print_exc()
            write_result(work, {"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
            return FAILED
        write_result(work, {"status": "succeeded", "result": result})
        print(f"job {job.name} succeeded", file=sys.stderr, flush=True)
        return SUCCEEDED
    finally:
        if ports is not None:
            await ports.stop()
        await lifecycle.stop(chute)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def call_in_task(chute: Any, job: Job, kwargs: dict[str, Any], outputs: Path, inputs: Path) -> Any:
    """Calls the job; a sync one in a daemon thread, so that cancelling it never waits for the thread to end."""
    from chutes.job import job_kwargs

    kwargs = job_kwargs(job, kwargs, output_dir=str(outputs), input_dir=str(inputs))
    if job.is_async:
        return await job.fn(chute, **kwargs)
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def work() -> None:
        try:
            result = job.fn(chute, **kwargs)
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    threading.Thread(target=work, name=f"job {job.name}", daemon=True).start()
    return await future


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m chutes.jobrun", description="Run one job of a chute once (how a host starts a job)."
    )
    parser.add_argument("ref", help="the chute: module:attr, path/to/file.py:attr, or module")
    parser.add_argument("name", help="the job's name (its function's name)")
    parser.add_argument("--dir", required=True, type=Path, help="the job's directory (args.json, inputs/, outputs/)")
    parser.add_argument("--id", default="", help="the job's id, given to it as $CHUTES_JOB_ID")
    parser.add_argument("--host", default="0.0.0.0", help="address to serve the job's ports on")
    parser.add_argument("--port", type=int, help="serve the job's ports on this TCP port")
    parser.add_argument("--uds", metavar="PATH", help="serve the job's ports on this Unix socket")
    parser.add_argument("--fd", type=int, help="serve the job's ports on this inherited listening socket")
    parser.add_argument("--lifeline", type=int, metavar="FD", help="exit at once when this pipe closes (the host died)")
    return parser.parse_args(argv)


def listen(args: argparse.Namespace) -> socket.socket | None:
    from chutes.serve import bind_socket, bind_unix_socket, socket_from_fd

    if args.fd is not None:
        return socket_from_fd(args.fd)
    if args.uds:
        return bind_unix_socket(args.uds)
    if args.port is not None:
        return bind_socket(args.host, args.port)
    return None


def main(argv: list[str] | None = None) -> int:
    """Loads the chute, checks the job and its arguments, runs it; returns the exit code."""
    args = parse_args(argv)
    if args.lifeline is not None:
        from chutes.serve import watch_lifeline

        watch_lifeline(args.lifeline)
    from chutes.loader import load_chute

    if args.id:
        os.environ[JOB_ID_ENV] = args.id
    work = args.dir.resolve()
    try:
        chute = load_chute(args.ref)
        job = find_job(chute, args.name)
        raw = (work / "args.json").read_bytes() if (work / "args.json").is_file() else b"{}"
        kwargs = bind_args(job, raw)
        sock = listen(args)
    except JobInputError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        with contextlib.suppress(OSError):
            write_result(work, {"status": "failed", "error": str(exc)})
        return BAD_INPUT
    except ChutesError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return FAILED
    if sock is not None:
        sock.listen(128)
    return asyncio.run(run_job(chute, job, kwargs, work, sock))


if __name__ == "__main__":
    sys.exit(main())
