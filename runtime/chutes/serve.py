"""The server entrypoint of a chute: `python -m chutes.serve REF` runs it under uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import copy
import errno
import gc
import os
import socket
import stat
import sys
from collections.abc import Callable
from typing import Any

import uvicorn

from chutes.exceptions import ChutesError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
GRACEFUL_SHUTDOWN_SECONDS = 30
STARTUP_FAILURE = 3
INTERRUPTED = 130  # the shell's code for a process stopped by SIGINT (128 + 2)


class PortInUseError(ChutesError):
    """The address a chute should listen on is taken."""


def build_log_config(log_level: str) -> dict[str, Any]:
    """Returns uvicorn's logging config, extended so the `chutes` loggers print too."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    level = "INFO" if log_level == "trace" else log_level.upper()
    config["loggers"]["chutes"] = {"handlers": ["default"], "level": level, "propagate": False}
    return config


class ChuteServer(uvicorn.Server):
    """A uvicorn server that calls `on_started` once it listens and every startup hook has run, and
    serves the connections a host hands over on the socket `handoff` (see chutes.handoff)."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        on_started: Callable[[], None] | None = None,
        handoff: socket.socket | None = None,
    ) -> None:
        super().__init__(config)
        self.on_started = on_started
        self.handoff = handoff
        self.handoff_receiver: Any = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            # What the chute loaded at startup (its model, libraries) lives as long as the server: out of the
            # cyclic collector's sight, a full collection no longer walks it while every stream waits.
            gc.collect()
            gc.freeze()
        if self.started and self.handoff is not None:
            from chutes.handoff import HandoffReceiver

            options = {"config": self.config, "server_state": self.server_state, "app_state": self.lifespan.state}
            server = _local_addr(sockets[0]) if sockets else None
            self.handoff_receiver = HandoffReceiver(self.handoff, self.config.http_protocol_class, options, server)
        if self.started and self.on_started is not None:
            self.on_started()


def _local_addr(sock: socket.socket) -> tuple[str, int | None] | None:
    """Returns a listener's address as uvicorn puts it in a request's scope["server"]."""
    name = sock.getsockname()
    if isinstance(name, tuple):
        return (str(name[0]), int(name[1]))
    return (name, None) if isinstance(name, str) else None


def build_config(app: Any, *, host: str, port: int, log_level: str = "info", **options: Any) -> uvicorn.Config:
    """Returns a uvicorn Config with the settings every chute server uses."""

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


def bind_unix_socket(path: str) -> socket.socket:
    """Binds a listening Unix socket at path (replacing a stale one), readable by its owner only."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
    except OSError as exc:
        sock.close()
        raise PortInUseError(f"cannot listen on the Unix socket {path}: {exc.strerror}. Check --uds.") from None
    return sock


def _inherited_socket(fd: int, option: str, error: type[ChutesError]) -> socket.socket:
    """Returns the socket a parent process passed as fd (given with `option`), or raises `error`."""
    try:
        return socket.socket(fileno=fd)
    except OSError as exc:
        raise error(f"file descriptor {fd} is not a socket ({exc.strerror}). Check {option}.") from None


def socket_from_fd(fd: int) -> socket.socket:
    """Returns the listening socket a supervisor passed as fd, or raises PortInUseError."""
    sock = _inherited_socket(fd, "--fd", PortInUseError)
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0:
        sock.detach()
        raise PortInUseError(f"file descriptor {fd} is a socket that is not listening. Check --fd.")
    return sock


def handoff_socket(fd: int) -> socket.socket:
    """Returns the handoff socket a host passed as fd, or raises ChutesError."""
    sock = _inherited_socket(fd, "--handoff", ChutesError)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_SEQPACKET:
        sock.detach()
        raise ChutesError(f"file descriptor {fd} is not a Unix SOCK_SEQPACKET socket. Check --handoff.")
    return sock


def handoff_from_environment() -> socket.socket | None:
    """Returns the handoff socket of a container's instance, connected to where the host's docker executor
    said (CHUTES_HANDOFF_SOCKET); None when it said nothing, or the socket cannot be reached."""
    from chutes.handoff import HANDOFF_ENV, connect

    path = os.environ.get(HANDOFF_ENV)
    return connect(path) if path else None


def serve(
    app: Any,
    *,
    host: str,
    port: int,
    log_level: str = "info",
    sock: socket.socket | None = None,
    on_started: Callable[[], None] | None = None,
    handoff: socket.socket | None = None,
) -> bool:
    """Serves `app` until SIGINT/SIGTERM, then runs its shutdown hooks; returns whether it started.

    `on_started` is called once the server listens and the startup hooks succeeded; `handoff` is the
    socket on which a host hands over client connections (chutes.handoff). After a
    graceful stop on SIGINT, KeyboardInterrupt is raised (as uvicorn re-raises the signal).
    """
    sock = sock or bind_socket(host, port)
    config = build_config(app, host=host, port=port, log_level=log_level)
    server = ChuteServer(config, on_started=on_started, handoff=handoff)
    try:
        server.run(sockets=[sock])
    except SystemExit:
        # uvicorn exits the process when the lifespan startup fails; the caller reports it.
        if server.started:
            raise
    finally:
        sock.close()
    return server.started


LIFELINE_LOST = 137  # as if killed by SIGKILL


def watch_lifeline(fd: int) -> None:
    """Kills this process as soon as the pipe `fd` reaches end of file: its writer, the host, is gone.

    A parent-death signal is not enough here: a sandbox that switches uid clears it, and a host
    killed with SIGKILL must not leave its chutes holding GPUs and sockets.
    """
    import threading

    def watch() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            return  # not a pipe we were given: nothing to watch
        # not kill(getpid(), SIGKILL): as pid 1 of its sandbox's namespace, the server ignores that
        os._exit(LIFELINE_LOST)

    threading.Thread(target=watch, name="chutes-lifeline", daemon=True).start()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Reads the command line of `python -m chutes.serve`."""
    parser = argparse.ArgumentParser(
        prog="python -m chutes.serve",
        description="Serve a chute with uvicorn (the entrypoint of chute images).",
    )
    parser.add_argument("ref", help="the chute: module:attr, path/to/file.py:attr, or module")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    parser.add_argument("--uds", metavar="PATH", help="listen on this Unix socket instead of --host/--port")
    parser.add_argument("--fd", type=int, help="serve on this inherited listening socket (how a host starts it)")
    parser.add_argument(
        "--lifeline",
        type=int,
        metavar="FD",
        help="the read end of a pipe whose writer is the host: when it closes (the host died), exit at once",
    )
    parser.add_argument(
        "--handoff",
        type=int,
        metavar="FD",
        help="a Unix socket on which the host hands over client connections of streaming requests",
    )
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS, help="log level (default: info)")
    return parser.parse_args(argv)


def listen(args: argparse.Namespace) -> socket.socket:
    """Returns the listening socket the command line asks for: --fd, else --uds, else --host/--port."""
    if args.fd is not None:
        return socket_from_fd(args.fd)
    if args.uds:
        return bind_unix_socket(args.uds)
    return bind_socket(args.host, args.port)


def main(argv: list[str] | None = None) -> int:
    """Loads and serves a chute; returns the process exit code."""
    args = parse_args(argv)
    if args.lifeline is not None:
        watch_lifeline(args.lifeline)
    from chutes.loader import load_chute

    try:
        chute = load_chute(args.ref)
        sock = listen(args)
        handoff = handoff_socket(args.handoff) if args.handoff is not None else handoff_from_environment()
        started = serve(chute, host=args.host, port=args.port, log_level=args.log_level, sock=sock, handoff=handoff)
    except ChutesError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        # Ctrl-C is how a server is meant to stop (its shutdown hooks already ran): no traceback.
        return INTERRUPTED
    return 0 if started else STARTUP_FAILURE


if __name__ == "__main__":
    sys.exit(main())
