"""The benches that start a real host still run: a tiny run of each, so that a change to the host or
the CLI cannot break them unnoticed (they are not timed here; their figures live in bench/README.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.skipif(shutil.which("taskset") is None, reason="the bench pins processes with taskset (util-linux)")
@pytest.mark.parametrize("handoff", ["handed to the instance (--stream-handoff)", "relayed by the host"])
def test_bench_streams_runs_and_reports_every_event(handoff: str) -> None:
    flags = ["--stream-handoff"] if "handed" in handoff else []
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_streams.py"),
            "--streams",
            "5",
            "--events",
            "4",
            "--interval",
            "0.01",
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = {
        line.split()[0]: line.split() for line in done.stdout.splitlines() if line.startswith(("direct", "gateway"))
    }
    assert rows["direct"][1:3] == ["0", "20"]  # no failed stream, every event
    assert rows["gateway"][1:3] == ["0", "20"]
    assert "errors: 0" in done.stdout
    assert f"streams {handoff};" in done.stdout


@pytest.mark.skipif(shutil.which("taskset") is None, reason="the bench pins processes with taskset (util-linux)")
@pytest.mark.parametrize("framing", ["passed through", "parsed and framed again"])
def test_bench_relay_floor_relays_every_event(framing: str) -> None:
    flags = ["--parse"] if "parsed" in framing else []
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_relay_floor.py"), "--streams", "5", "--events", "4"]
        + ["--interval", "0.01", "--lockstep", *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"5 streams x 4 events ({framing})" in done.stdout
    row = next(line.split() for line in done.stdout.splitlines() if line.split()[:1] == ["1"])
    assert row[1] == "0"  # no failed stream: every event reached its client
    assert "relay CPU per event, median:" in done.stdout
