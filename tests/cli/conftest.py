"""Fixtures for CLI tests: the real `chutes` command in subprocesses, and real servers it starts."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

CHUTES = str(Path(sys.executable).with_name("chutes"))
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "chutes"
READY_TIMEOUT = 20.0


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """An environment with its own HOME and no chutes settings inherited from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTES_")}
    home = tmp_path / "home"
    home.mkdir()
    env["HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def chutes(cli_env: dict[str, str]):
    """Runs `chutes ARGS...` to completion and returns the CompletedProcess (text mode)."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60):
        return subprocess.run(
            [CHUTES, *args],
            cwd=cwd,
            env={**cli_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@dataclass
class Server:
    """A `chutes run` process and where it listens."""

    process: subprocess.Popen
    url: str
    port: int
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        """Signals the server (and its reload child) and returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.process.returncode


def wait_until_ready(server: Server) -> None:
    """Polls /_ready until it answers 200, failing with the server's output if it never does."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"chutes run exited with {server.process.returncode}:\n{server.stdout}\n{server.stderr}")
        try:
            if httpx.get(f"{server.url}/_ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    pytest.fail(f"chutes run was not ready within {READY_TIMEOUT} s:\n{server.stdout}\n{server.stderr}")


@pytest.fixture
def start_server(tmp_path: Path, cli_env: dict[str, str]) -> Iterator:
    """Starts `chutes run REF --port P ARGS...` on a free port; every server is stopped at teardown."""
    servers: list[Server] = []

    def start(
        ref: str, *args: str, cwd: Path | None = None, env: dict[str, str | None] | None = None, wait: bool = True
    ):
        """`env` adds to the test environment; a None value removes that variable."""
        port = free_port()
        merged = {k: v for k, v in {**cli_env, **(env or {})}.items() if v is not None}
        index = len(servers)
        stdout_path, stderr_path = tmp_path / f"server{index}.out", tmp_path / f"server{index}.err"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            process = subprocess.Popen(
                [CHUTES, "run", ref, "--port", str(port), *args],
                cwd=cwd or FIXTURES,
                env=merged,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        server = Server(process, f"http://127.0.0.1:{port}", port, stdout_path, stderr_path)
        servers.append(server)
        if wait:
            wait_until_ready(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def basic_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One plain `chutes run` of cli_basic.py shared by the invoke tests of a module."""
    tmp = tmp_path_factory.mktemp("basic-server")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTES_")}
    port = free_port()
    with (tmp / "out").open("wb") as out, (tmp / "err").open("wb") as err:
        process = subprocess.Popen(
            [CHUTES, "run", "cli_basic.py:chute", "--port", str(port)],
            cwd=FIXTURES,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", port, tmp / "out", tmp / "err")
    try:
        wait_until_ready(server)
        yield server
    finally:
        server.stop()


@pytest.fixture
def fixture_copy(tmp_path: Path):
    """Copies a fixture chute into tmp_path (so a test may edit it) and returns the copy's path."""

    def copy(name: str) -> Path:
        target = tmp_path / "src" / name
        target.parent.mkdir(exist_ok=True)
        shutil.copy(FIXTURES / name, target)
        return target

    return copy
