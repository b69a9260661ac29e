"""Progress of long work: a live bar when stderr is a terminal, a few plain lines otherwise."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

SCRIPT = """
from chutes_cli.progress import Progress
with Progress("packing demo", total=8 << 20) as progress:
    for _ in range(8):
        progress.advance(1 << 20)
    progress.update(status="Collecting [demo]==1")
"""


def run(stderr: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT], stderr=stderr, stdout=subprocess.PIPE, timeout=60)


def test_plain_lines_when_stderr_is_not_a_terminal() -> None:
    result = run(subprocess.PIPE)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().splitlines()
    assert lines[0] == "  packing demo (8.0 MiB) ..."
    assert lines[1:4] == [f"  packing demo: {p}% ({m}.0 MiB of 8.0 MiB)" for p, m in ((25, 2), (50, 4), (75, 6))]
    assert lines[4] == "    Collecting [demo]==1"
    assert lines[5].startswith("  packing demo: done in ")


def test_a_live_bar_on_a_terminal() -> None:
    leader, follower = pty.openpty()
    try:
        result = run(follower)
        os.set_blocking(leader, False)
        shown = b""
        try:
            while chunk := os.read(leader, 65536):
                shown += chunk
        except BlockingIOError:
            pass
    finally:
        os.close(leader)
        os.close(follower)
    assert result.returncode == 0
    text = shown.decode(errors="replace")
    assert "packing demo" in text and "8.0/8.0 MiB" in text and "Collecting [demo]==1" in text
    assert "25%" not in text and "done in" not in text
