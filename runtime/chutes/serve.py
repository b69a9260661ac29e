"""The server entrypoint of a chute: `python -m chutes.serve REF` runs it under uvicorn."""

from __future__ import annotations

import argparse
import copy
import errno
import socket
import sys
from typing import Any

from chutes.exceptions import ChutesError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
GRACEFUL_SHUTDOWN_SECONDS = 30
STARTUP_FAILURE = 3


class PortInUseError(ChutesError):
    """The address a chute should listen on is taken."""


def build_log_config(log_level: str) -> dict[str, Any]:
    """Returns uvicorn's logging config, extended so the `chutes` loggers print too."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    level = "INFO" if log_level == "trace" else log_level.upper()
    config["loggers"]["chutes"] = {"handlers": ["default"], "level": level, "propagate": False}
    return config


def build_config(app: Any, *, host: str, port: int, log_level: str = "info", **options: Any) -> Any:
    """Returns a uvicorn Config with the settings every chute server uses."""
    import uvicorn

    from chutes.protocol import server_options

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=build_log_config(log_level),
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        loop="auto",
        **server_options(),
        **options,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """Binds a listening socket, or raises PortInUseError saying which port and what to do."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use, probably by another server. Stop that "
                f"server, or pick another port with --port (e.g. --port {port + 1})."
            ) from None
        if exc.errno == errno.EACCES:
            raise PortInUseError(
                f"no permission to listen on port {port}; ports below 1024 need privileges. "
                "Pick another port with --port, e.g. --port 8000."
            ) from None
        raise PortInUseError(f"cannot listen on {host}:{port}: {exc.strerror}. Check --host and --port.") from None
    sock.set_inheritable(True)
    return sock


def serve(app: Any, *, host: str, port: int, log_level: str = "info", sock: socket.socket | None = None) -> bool:
    """Serves `app` until SIGINT/SIGTERM, then runs its shutdown hooks; returns whether it started."""
    import uvicorn

    sock = sock or bind_socket(host, port)
    server = uvicorn.Server(build_config(app, host=host, port=port, log_level=log_level))
    try:
        server.run(sockets=[sock])
    except SystemExit:
        # uvicorn exits the process when the lifespan startup fails; the caller reports it.
        if server.started:
            raise
    finally:
        sock.close()
    return server.started


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Reads the command line of `python -m chutes.serve`."""
    parser = argparse.ArgumentParser(
        prog="python -m chutes.serve",
        description="Serve a chute with uvicorn (the entrypoint of chute images).",
    )
    parser.add_argument("ref", help="the chute: module:attr, path/to/file.py:attr, or module")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS, help="log level (default: info)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Loads and serves a chute; returns the process exit code."""
    args = parse_args(argv)
    from chutes.loader import load_chute

    try:
        chute = load_chute(args.ref)
        sock = bind_socket(args.host, args.port)
    except ChutesError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 1
    started = serve(chute, host=args.host, port=args.port, log_level=args.log_level, sock=sock)
    return 0 if started else STARTUP_FAILURE


if __name__ == "__main__":
    sys.exit(main())
