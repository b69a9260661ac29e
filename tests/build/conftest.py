"""Fixtures for build tests: the real `chutes` command, example chutes copied to tmp, a real engine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chutes_build.wheel import wheel_cache_dir

CHUTES = str(Path(sys.executable).with_name("chutes"))
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stream_chute"
NO_ENGINE = "unix:///nonexistent/chutes-test-engine.sock"


@pytest.fixture
def build_env() -> dict[str, str]:
    """The environment for `chutes`: wheels cached where this user caches them, no dev flags."""
    env = {k: v for k, v in os.environ.items() if k not in ("CHUTES_DEV", "CHUTES_LOG_REQUESTS")}
    env["CHUTES_WHEEL_CACHE"] = str(wheel_cache_dir())
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def chutes(build_env: dict[str, str]):
    """Runs `chutes ARGS...` to completion and returns the CompletedProcess (text mode)."""

    def run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
        return subprocess.run(
            [CHUTES, *args], cwd=cwd, env={**build_env, **(env or {})}, capture_output=True, text=True, timeout=timeout
        )

    return run


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of examples/stream_chute that a test may edit."""
    target = tmp_path / "stream_chute"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture
def write_chute(tmp_path: Path):
    """Writes a chute module `name.py` whose Image is `image_code`, and returns its folder."""

    def write(name: str, image_code: str, folder: str = "chute_src") -> Path:
        root = tmp_path / folder
        root.mkdir(exist_ok=True)
        source = f'''
            from chutes.chute import Chute
            from chutes.image import Image

            image = {image_code}
            chute = Chute(username="tester", name="{name.replace("_", "-")}", image=image)


            @chute.cord(public_api_path="/ping")
            async def ping(self) -> dict:
                return {{"pong": True}}
        '''
        (root / f"{name}.py").write_text(textwrap.dedent(source))
        return root

    return write
