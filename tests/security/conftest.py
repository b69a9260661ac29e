"""Fixtures for the hostile-tenant tests: they need bubblewrap, and skip without it (but fail under CI)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sandbox_available() -> None:
    """Skips unless this machine can sandbox chutes with bubblewrap; under CI, fails instead."""
    from chutes_host.sandbox import Sandbox, SandboxUnavailable

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
