"""The set_user("chutes") + pip_install shape built and run on a real engine (see .ci/engine.sh).

Skips without an engine unless CI is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from chutes_build.wheel import wheel_cache_dir
from chutes_cli.container import free_port, start_chute, stop_chute, wait_until_ready
from tests.cli.conftest import CHUTES
from tests.compat.test_shapes import SHAPES, env

pytestmark = pytest.mark.engine
TAG = "localhost/chutes-compat/set-user-pip:test"


def test_set_user_then_pip_install_builds_and_runs(engine, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(SHAPES / "set_user_pip.py", project / "set_user_pip.py")
    extra = {"CHUTES_WHEEL_CACHE": str(wheel_cache_dir())}
    for key in ("DOCKER_HOST", "CHUTES_BASE_IMAGE"):
        if os.environ.get(key):
            extra[key] = os.environ[key]
    built = subprocess.run(
        [CHUTES, "build", "set_user_pip.py:chute", "--tag", TAG],
        cwd=project, env={**env(), **extra}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr  # before the venv was handed over: pip's Errno 13
    chute = start_chute(engine, TAG, port=free_port())
    try:
        wait_until_ready(chute, timeout=60)
        assert httpx.post(f"{chute.url}/six", timeout=10).json() == {"six": "1.16.0", "uid": 1000}
    finally:
        stop_chute(chute)
        engine.images.remove(TAG, force=True)
