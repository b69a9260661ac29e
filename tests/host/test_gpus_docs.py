"""The examples of docs/gpus.md work as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from chutes.loader import load_chute
from chutes_host.scheduling.gpus import load_inventory
from chutes_host.scheduling.placement import place
from tests.host.conftest import run_cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "gpus.md"
BLOCK = re.compile(r"^```(console|python file=(\S+))\n(.*?)^```", re.M | re.S)


def blocks(kind: str) -> list[re.Match]:
    return [m for m in BLOCK.finditer(DOC.read_text()) if m.group(1).startswith(kind)]


def test_the_selector_example_defines_the_chutes_it_describes(tmp_path: Path, monkeypatch) -> None:
    (example,) = blocks("python")
    (tmp_path / example.group(2)).write_text(example.group(3))
    monkeypatch.chdir(tmp_path)
    llm = load_chute("llm:chute")
    tokenizer = load_chute("llm:tokenizer")
    gpus = load_inventory("2xNVIDIA A100-SXM4-80GB:80,2xNVIDIA H100 80GB HBM3:80,4xNVIDIA L40S:48").gpus
    assert [g.name for g in place(llm.node_selector, gpus, {"0"})] == ["NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"]
    assert tokenizer.node_selector.is_cpu
    assert place(tokenizer.node_selector, gpus, ()) == ()


def test_console_examples_print_what_the_page_shows(tmp_path: Path) -> None:
    (console,) = blocks("console")
    lines = console.group(3).splitlines()
    command, expected = lines[0], lines[1:]
    assert command.startswith("$ chutes ")
    result = run_cli(*shlex.split(command[len("$ chutes ") :]), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == expected
