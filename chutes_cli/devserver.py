"""The app factory of a reloading `chutes run`: each server process loads the chute afresh."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from chutes.types import Message, Receive, Scope, Send

REF_ENV = "CHUTES_REF"
BANNER_ENV = "CHUTES_RUN_BANNER"
PID_FILE_ENV = "CHUTES_RUN_PID_FILE"
WAITING = "Waiting for a change to reload; until then every request gets this error (503)."

# The guarded chute this server process serves (None while its module is broken), for `announce`.
loaded: StartupGuard | None = None


def create_app() -> Any:
    """Loads the chute named by $CHUTES_REF; while its module is broken, serves the error instead."""
    from chutes.exceptions import ChuteLoadError
    from chutes.loader import compile_from_source, load_chute, source_directory
    from chutes_cli.errors import print_error

    global loaded
    compile_from_source(source_directory(os.environ[REF_ENV]))
    try:
        chute = load_chute(os.environ[REF_ENV])
    except ChuteLoadError as exc:
        loaded = None
        print_error(f"{exc}\n\n{WAITING}")
        summary = str(exc).split("\n\n", 1)[0]
        detail = f"the chute's module does not load, so nothing can serve this request: {summary}"
        return FailureApp(detail, getattr(exc, "user_traceback", None))
    loaded = StartupGuard(chute)
    return loaded


def announce() -> None:
    """Prints the chute's cords and writes the pid file, once the server process serves."""
    from chutes_cli.banner import print_banner
    from chutes_cli.pidfile import write_pid_file

    if loaded is not None and loaded.failure is None:
        host, port, mode = os.environ[BANNER_ENV].split(" ")
        print_banner(loaded.app, host=host, port=int(port), dev=mode == "dev", reload=True)
    pid_file = os.environ.get(PID_FILE_ENV)
    if pid_file:
        # The reloader (this process's parent) is what a user stops; it outlives each reload.
        write_pid_file(Path(pid_file), os.getppid())


class StartupGuard:
    """Serves the chute; if a startup hook fails, serves that failure (503) instead of exiting.

    A dev server that exits on a failed startup leaves its socket to the reloader, where
    requests wait unanswered until the next edit.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.failure: FailureApp | None = None

    def __repr__(self) -> str:
        return f"StartupGuard({self.app!r}, failed={self.failure is not None})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.failure is not None:
            await self.failure(scope, receive, send)
        elif scope["type"] != "lifespan":
            await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, self.guarded(send))
            if self.failure is not None:  # the chute's lifespan ended at the failure; finish it here
                await self.failure(scope, receive, send)

    def guarded(self, send: Send) -> Send:
        from chutes_cli.errors import print_error

        async def guarded_send(message: Message) -> None:
            if message["type"] != "lifespan.startup.failed":
                await send(message)
                return
            text = message.get("message") or "a startup hook failed"
            summary, _, trace = text.partition("\n")
            print_error(f"{text.rstrip()}\n\n{WAITING}")
            detail = f"the chute did not start: {summary.rstrip(':')}"
            self.failure = FailureApp(detail, trace.strip() or None)
            self.failure.started = True
            await send({"type": "lifespan.startup.complete"})

        return guarded_send


class FailureApp:
    """An ASGI app answering every request with 503 and why the chute cannot serve, at once.

    Without it, requests to a dev server whose module is broken waited in the listen backlog
    until the client gave up, and the client blamed a busy chute.
    """

    def __init__(self, detail: str, trace: str | None = None) -> None:
        body: dict[str, str] = {"detail": detail}
        if trace:
            body["traceback"] = trace
        self.body = json.dumps(body).encode()
        self.started = False

    def __repr__(self) -> str:
        return f"FailureApp({len(self.body)} bytes)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup" and not self.started:
                    self.started = True
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self.body)).encode()),
                (b"retry-after", b"1"),
            ]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": self.body})
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1011, "reason": "the chute cannot serve"})
