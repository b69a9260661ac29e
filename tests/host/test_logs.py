"""Instance log files: tails and rotation."""

from __future__ import annotations

from pathlib import Path

from chutes_host.observability.logs import read_tail, rotate_if_large


def test_large_log_is_rotated(tmp_path: Path) -> None:
    log = tmp_path / "instance-0.log"
    log.write_text("old\n" * 10)
    rotate_if_large(log, limit=100)
    assert log.exists()
    log.write_text("x" * 200)
    rotate_if_large(log, limit=100)
    assert not log.exists()
    assert (tmp_path / "instance-0.log.1").read_text() == "x" * 200
    rotate_if_large(tmp_path / "missing.log", limit=1)


def test_tail_reads_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert read_tail(log, 3) == "line 97\nline 98\nline 99"
    assert read_tail(tmp_path / "missing.log") == ""
