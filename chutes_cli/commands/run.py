"""`chutes run`: serve a chute locally, with reload and request logs in --dev."""

from __future__ import annotations

import os
import signal
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class LogLevel(StrEnum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"
    trace = "trace"


def run_chute(
    ref: Annotated[
        str,
        typer.Argument(help="The chute: module:attr, path/to/file.py:attr, or module (attr 'chute').", metavar="REF"),
    ],
    dev: Annotated[
        bool,
        typer.Option("--dev", help="Reload on change, tracebacks in 500 bodies, one log line per request."),
    ] = False,
    host: Annotated[str, typer.Option(help="Address to listen on.", metavar="HOST")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on (0: any free port).", min=0, max=65535, metavar="PORT")
    ] = 8000,
    reload: Annotated[
        bool, typer.Option("--reload", help="Restart when a .py file under the chute's directory changes.")
    ] = False,
    log_level: Annotated[
        LogLevel, typer.Option(help="Server log level: critical, error, warning, info, debug, trace.", metavar="LEVEL")
    ] = LogLevel.info,
    pid_file: Annotated[
        Path | None,
        typer.Option(
            "--pid-file",
            help="Write the server's process id to FILE once it serves (removed when it stops), "
            'so `kill "$(cat FILE)"` stops just this server.',
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve a chute locally.

    It serves on HOST:PORT until Ctrl-C or SIGTERM, then runs the shutdown hooks. The URL of
    each cord and of /docs is printed at start.

    Example: chutes run my_chute:chute --dev
    """
    from chutes.loader import check_ref, load_chute
    from chutes.serve import INTERRUPTED, bind_socket, serve
    from chutes_cli.banner import print_banner
    from chutes_cli.errors import fail
    from chutes_cli.pidfile import check_pid_file, remove_pid_file, write_pid_file

    os.environ["CHUTES_LOCAL_JOBS"] = "1"  # serve the chute's jobs at /_jobs/NAME (a host never does)
    if dev:
        os.environ["CHUTES_DEV"] = "1"
        os.environ["CHUTES_LOG_REQUESTS"] = "1"
    pid_file = check_pid_file(pid_file) if pid_file is not None else None
    if dev or reload:
        # The server process loads the chute (again after each edit); here only check it exists.
        check_ref(ref)
        sock = bind_socket(host, port)
        try:
            serve_reloading(
                ref,
                host=host,
                port=sock.getsockname()[1],
                dev=dev,
                log_level=log_level.value,
                sock=sock,
                pid_file=pid_file,
            )
        finally:
            remove_pid_file(pid_file)
        return
    chute = load_chute(ref)
    sock = bind_socket(host, port)
    port = sock.getsockname()[1]

    def announce() -> None:
        print_banner(chute, host=host, port=port, dev=False, reload=False)
        write_pid_file(pid_file, os.getpid())

    # uvicorn re-raises SIGTERM once it has shut down; exit then through Python, so the
    # pid file is removed, with the code a process killed by SIGTERM has (143).
    previous = signal.signal(signal.SIGTERM, exit_on_signal)
    try:
        started = serve(chute, host=host, port=port, log_level=log_level.value, sock=sock, on_started=announce)
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        remove_pid_file(pid_file)
    if not started:
        fail("the chute did not start: a startup hook failed (its traceback is above). Fix it and run again.")


def exit_on_signal(signum: int, frame: object) -> None:
    """Exits with 128 + the signal's number, the shell's code for a process a signal stopped."""
    raise SystemExit(128 + signum)


def serve_reloading(ref: str, *, host: str, port: int, dev: bool, log_level: str, sock, pid_file: Path | None) -> None:
    """Serves the chute in a child process that restarts when its source changes."""
    from uvicorn.supervisors import ChangeReload

    from chutes.loader import source_directory
    from chutes.serve import ChuteServer, build_config
    from chutes_cli.devserver import BANNER_ENV, PID_FILE_ENV, REF_ENV, announce

    os.environ[REF_ENV] = ref
    os.environ[BANNER_ENV] = f"{host} {port} {'dev' if dev else 'reload'}"
    if pid_file is not None:
        os.environ[PID_FILE_ENV] = str(pid_file)
    config = build_config(
        "chutes_cli.devserver:create_app",
        host=host,
        port=port,
        log_level=log_level,
        factory=True,
        reload=True,
        reload_dirs=[str(source_directory(ref))],
    )
    server = ChuteServer(config, on_started=announce)
    try:
        ChangeReload(config, target=server.run, sockets=[sock]).run()
    finally:
        sock.close()


def register(app: typer.Typer) -> None:
    """Adds `chutes run` to `app`."""
    app.command("run")(run_chute)
