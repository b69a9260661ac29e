"""Fixtures for host tests: a real `chutes host serve` on 127.0.0.1 with a temporary data dir."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

CHUTES = str(Path(sys.executable).with_name("chutes"))
FIXTURES = Path(__file__).parents[1] / "fixtures" / "chutes"


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTES_")}
    env.update(HOME=str(home), **extra)
    return env


def run_cli(*args: str, home: Path, cwd: Path | None = None, timeout: float = 120, **env: str):
    """Runs the real `chutes` command and returns the CompletedProcess (text)."""
    return subprocess.run(
        [CHUTES, *args], cwd=cwd, env=cli_env(home, **env), capture_output=True, text=True, timeout=timeout
    )


@dataclass
class Host:
    """A `chutes host serve` subprocess and what tests need to talk to it."""

    data_dir: Path
    home: Path
    port: int
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Host:
        with open(self.data_dir.parent / f"host-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen(
                [CHUTES, "host", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir), *self.extra_args],
                env=cli_env(self.home, **self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"host exited with {self.proc.returncode}: {self.log_text()}")
            try:
                if httpx.get(f"{self.url}/api/v1/openapi.json", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"host did not answer within 30 s: {self.log_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_text(self) -> str:
        return (self.data_dir.parent / f"host-{self.port}.log").read_text(errors="replace")

    def add_user(self, name: str) -> str:
        result = run_cli("host", "users", "add", name, "--data-dir", str(self.data_dir), home=self.home)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def cli(self, *args: str, key: str, cwd: Path | None = None, timeout: float = 120):
        return run_cli(*args, home=self.home, cwd=cwd, timeout=timeout, CHUTES_API_URL=self.url, CHUTES_API_KEY=key)

    def call(self, slug: str, path: str, *, key: str | None = None, method: str = "POST", **kwargs) -> httpx.Response:
        """Calls a chute through the gateway, routed by the Host header."""
        headers = {"Host": f"{slug}.localhost:{self.port}", **kwargs.pop("headers", {})}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        kwargs.setdefault("timeout", 30)
        return httpx.request(method, self.url + path, headers=headers, **kwargs)

    def api(self, method: str, path: str, *, key: str | None, **kwargs) -> httpx.Response:
        headers = {"X-API-Key": key} if key else {}
        headers.update(kwargs.pop("headers", {}))
        return httpx.request(method, f"{self.url}/api/v1{path}", headers=headers, timeout=30, **kwargs)


def docker_host(base: Path) -> Host:
    """Starts a host with the docker executor on the engine the tests run against (base images and
    wheels as the build tests use them)."""
    from chutes_build.wheel import wheel_cache_dir

    env = {"CHUTES_WHEEL_CACHE": str(wheel_cache_dir())}
    if os.environ.get("CHUTES_BASE_IMAGE"):
        env["CHUTES_BASE_IMAGE"] = os.environ["CHUTES_BASE_IMAGE"]
    host = Host(
        data_dir=base / "data", home=base / "home", port=free_port(), extra_args=["--executor", "docker"], env=env
    )
    host.home.mkdir()
    host.start()
    return host


def make_project(root: Path, *fixtures: str) -> Path:
    """Copies fixture chute files into a fresh project directory, as a user would have them."""
    root.mkdir(parents=True, exist_ok=True)
    for name in fixtures:
        shutil.copy(FIXTURES / name, root / name)
    return root


def wait_for(predicate, *, timeout: float, what: str, host: Host | None = None):
    """Polls predicate until it returns something truthy; fails (with the host's log, if given) on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    log = f"\n--- host log ---\n{host.log_text()[-4000:]}" if host is not None else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{log}")


@pytest.fixture
def host_factory(tmp_path_factory) -> Iterator:
    """host_factory(*args) starts a host with a fresh data dir; every host is stopped after the test."""
    hosts: list[Host] = []

    def make(*extra_args: str) -> Host:
        base = tmp_path_factory.mktemp("host")
        host = Host(data_dir=base / "data", home=base / "home", port=free_port(), extra_args=list(extra_args))
        host.home.mkdir()
        hosts.append(host)
        return host.start()

    yield make
    for host in hosts:
        host.stop()
