"""Every folder of tests is collected by the suite's own command: a folder pytest skips is a silent gap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def test_every_test_folder_is_collected() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    collected = {line.split("::", 1)[0] for line in out.stdout.splitlines() if "::" in line}
    collected_dirs = {str(Path(f).parent) for f in collected}
    test_dirs = {str(p.parent.relative_to(TESTS.parent)) for p in TESTS.rglob("test_*.py")}
    missing = sorted(test_dirs - collected_dirs)
    assert not missing, f"test folders that `pytest` never collects: {missing} (see norecursedirs in pyproject.toml)"
    assert "tests/build" in collected_dirs
    assert "tests/security" in collected_dirs
