"""docs/jobs.md as written: its chute file, the `chutes jobs run` session it shows, and the example it names."""

from __future__ import annotations

import importlib.util
import re
import shlex
import struct
import zlib
from pathlib import Path

from tests.cli.test_docs import BLOCK, assert_printed

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "jobs.md"


def test_the_page_runs_as_written(chutes, tmp_path: Path) -> None:
    ran = 0
    for match in BLOCK.finditer(DOC.read_text()):
        if match.group(2):
            (tmp_path / match.group(2)).write_text(match.group(3))
            continue
        lines = match.group(3).splitlines()
        for index, line in enumerate(lines):
            if not line.startswith("$ "):
                continue
            expected = []
            for following in lines[index + 1 :]:
                if following.startswith("$ "):
                    break
                expected.append(following)
            argv = shlex.split(line[2:])
            assert argv[0] == "chutes"
            result = chutes(*argv[1:], cwd=tmp_path, timeout=120)
            assert result.returncode == 0, result.stderr
            assert_printed(expected, result.stdout + result.stderr, line)
            ran += 1
    assert ran == 1
    primes = (tmp_path / "run" / "outputs" / "primes.csv").read_text().split()
    assert len(primes) == 78498 + 1 and primes[:4] == ["prime", "2", "3", "5"]
    assert (tmp_path / "run" / "outputs" / "gaps.csv").read_text().startswith("gap,count\n1,1\n2,8169\n")


def test_the_example_renders_real_png_frames(chutes, tmp_path: Path) -> None:
    command = re.search(r"^chutes jobs run (examples/jobs/jobs.py:chute .*)$", DOC.read_text(), re.M)
    argv = shlex.split(command.group(1))
    result = chutes("jobs", "run", str(ROOT / argv[0]), *argv[1:], "--dir", str(tmp_path / "run"), timeout=120)
    assert result.returncode == 0, result.stderr
    outputs = tmp_path / "run" / "outputs"
    assert sorted(p.name for p in outputs.iterdir()) == [f"frame-00{i}.png" for i in range(4)] + ["frames.csv"]
    # loaded under a name of its own: a module named `jobs` left in sys.modules would clash with other
    # tests that load the example as `chutes` does (by its file name)
    spec = importlib.util.spec_from_file_location("examples_jobs_frames", ROOT / "examples" / "jobs" / "jobs.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    for index in range(4):
        data = (outputs / f"frame-00{index}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert (width, height) == (160, 120)
        (length,) = struct.unpack(">I", data[33:37])
        rows = zlib.decompress(data[41 : 41 + length])
        assert rows == example.mandelbrot(160, 120, 2.0**index, 200)  # the pixels the job computed, byte for byte
    table = (outputs / "frames.csv").read_text().splitlines()
    assert table[0] == "frame,zoom,seconds,black_pixels" and len(table) == 5
