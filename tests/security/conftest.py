"""Fixtures for the hostile-tenant tests: they need bubblewrap, and skip without it (but fail under CI)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.host.conftest import Host, make_project


@pytest.fixture(scope="session")
def sandbox_available() -> None:
    """Skips unless this machine can sandbox chutes with bubblewrap; under CI, fails instead."""
    from chutes_host.sandbox.bubblewrap import Sandbox, SandboxUnavailable

    reason = None
    if shutil.which("bwrap") is None:
        reason = "bubblewrap is not installed (run `bash .ci/sandbox.sh` as root)"
    else:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                Sandbox.detect(Path(tmp))
            except SandboxUnavailable as exc:
                reason = str(exc)
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so the sandbox tests must run")
        pytest.skip(reason)


from tests.host.conftest import host_factory  # noqa: E402, F401  (the same real-host fixture as tests/host)

# A host whose event loop waits on something a tenant made answers nothing at all: every control call of
# these tests must be answered within this many seconds.
ANSWER_WITHIN = 1.0


def start_hostile_host(base: Path, fixture: str) -> Host:
    """Starts a sandboxed host where the user eve has deployed the chute of the fixture file `fixture`
    (its module's `chute`); its key is `host.eve`."""
    host = Host(data_dir=base / "data", home=base / "home", port=free_port(), extra_args=["--sandbox", "bwrap"])
    host.home.mkdir()
    host.start()
    host.eve = host.add_user("eve")
    module = fixture.removesuffix(".py")
    deployed = host.cli("deploy", f"{module}:chute", key=host.eve, cwd=make_project(base / "p", fixture))
    assert deployed.returncode == 0, deployed.stderr
    return host


def quick(host: Host, method: str, path: str, **kwargs) -> httpx.Response:
    """Calls the control API as eve; fails when the host takes longer than ANSWER_WITHIN to answer."""
    try:
        return httpx.request(
            method, f"{host.url}/api/v1{path}", headers={"X-API-Key": host.eve}, timeout=ANSWER_WITHIN, **kwargs
        )
    except httpx.TimeoutException:
        pytest.fail(f"the host did not answer {method} {path} within {ANSWER_WITHIN} s:\n{host.log_text()[-3000:]}")
