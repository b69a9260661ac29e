"""`python -m chutes.serve --uds PATH` and `--fd N`: how a host serves an instance without a TCP port."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.cli.conftest import FIXTURES


def start(args: list[str], env: dict[str, str], tmp_path: Path, **popen) -> subprocess.Popen:
    with (tmp_path / "serve.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "chutes.serve", "cli_lifecycle:chute", *args],
            cwd=FIXTURES,
            env={**env, "CLI_LIFECYCLE_LOG": str(tmp_path / "events.log")},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen,
        )


def get_over_socket(path: Path, route: str, process: subprocess.Popen, tmp_path: Path) -> httpx.Response:
    """Waits until the server answers on the Unix socket, and returns its response to GET route."""
    deadline = time.monotonic() + 30
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=5) as client:
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            if accepts(path) and client.get("http://chute/_ready").status_code == 200:
                return client.get(f"http://chute{route}")
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.05)


def accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)


def test_serves_on_a_unix_socket_only_its_owner_may_open(tmp_path: Path, cli_env: dict[str, str]) -> None:
    path = tmp_path / "chute.sock"
    path.write_text("stale")  # not a socket: never silently replaced
    process = start(["--uds", str(path)], cli_env, tmp_path)
    assert process.wait(30) == 1
    assert "cannot listen on the Unix socket" in (tmp_path / "serve.log").read_text()
    path.unlink()
    process = start(["--uds", str(path)], cli_env, tmp_path)
    try:
        assert get_over_socket(path, "/ping-me", process, tmp_path).status_code == 200
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        stop(process)


def test_serves_on_an_inherited_listening_socket(tmp_path: Path, cli_env: dict[str, str]) -> None:
    path = tmp_path / "given.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen()
    try:
        process = start(["--fd", str(listener.fileno())], cli_env, tmp_path, pass_fds=[listener.fileno()])
    finally:
        listener.close()
    try:
        assert get_over_socket(path, "/ping-me", process, tmp_path).json() == {"dev": False, "log_requests": False}
    finally:
        stop(process)


def test_a_descriptor_that_is_no_listening_socket_is_one_error_line(cli_env: dict[str, str]) -> None:
    read_end, write_end = os.pipe()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "chutes.serve", "cli_lifecycle:chute", "--fd", str(read_end)],
            cwd=FIXTURES,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=60,
            pass_fds=[read_end],
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: file descriptor {read_end} is not a socket")


def test_lifeline_closing_ends_the_server_at_once(cli_env, tmp_path: Path) -> None:
    """The host holds the write end; when it dies (even by SIGKILL) the pipe closes, and so does the server."""
    path = tmp_path / "chute.sock"
    read_end, write_end = os.pipe()
    process = start(["--uds", str(path), "--lifeline", str(read_end)], cli_env, tmp_path, pass_fds=[read_end])
    os.close(read_end)
    try:
        assert get_over_socket(path, "/_ping", process, tmp_path).status_code == 200
    finally:
        os.close(write_end)
    assert process.wait(timeout=30) == 137
