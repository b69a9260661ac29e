"""The examples in docs/build.md work as written."""

from __future__ import annotations

import re
from pathlib import Path

from chutes_build.ignore import is_ignored, parse_rules

DOC = Path(__file__).resolve().parents[2] / "docs" / "build.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_image_example_renders_with_its_steps(chutes, tmp_path: Path) -> None:
    (tmp_path / "doc_chute.py").write_text(blocks("python")[0])
    result = chutes("build", "doc_chute:chute", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\nFROM localhost/chutes-base:bookworm\n" in result.stdout
    assert 'ENV MODEL_DIR="/models/my model"' in result.stdout
    assert 'LABEL org.example.team="ml"' in result.stdout
    assert ".chutes/wheels/pip-1/requirements.txt" in result.stdout


def test_the_base_image_order_is_as_documented(chutes, tmp_path: Path) -> None:
    source = blocks("python")[0]
    (tmp_path / "with_base.py").write_text(source.replace("localhost/chutes-base:bookworm", "localhost/own:1"))
    (tmp_path / "no_base.py").write_text(source.replace('.from_base("localhost/chutes-base:bookworm")', ""))
    env = {"CHUTES_BASE_IMAGE": "localhost/from-env:1"}
    assert "\nFROM localhost/own:1\n" in chutes("build", "with_base:chute", "--dry-run", cwd=tmp_path, env=env).stdout
    assert (
        "\nFROM localhost/from-env:1\n" in chutes("build", "no_base:chute", "--dry-run", cwd=tmp_path, env=env).stdout
    )
    flag = chutes("build", "with_base:chute", "--dry-run", "--base-image", "localhost/flag:1", cwd=tmp_path, env=env)
    assert "\nFROM localhost/flag:1\n" in flag.stdout


def test_the_chutesignore_example_means_what_the_doc_says() -> None:
    example = re.search(r"```\n(# \.chutesignore\n.*?)```", DOC.read_text(), flags=re.S).group(1)
    rules = parse_rules(example.splitlines())
    assert is_ignored("notes/todo.md", rules)
    assert is_ignored("logs/deep/run.log", rules)
    assert is_ignored("data/raw/big.bin", rules) and not is_ignored("data/raw/sample.csv", rules)
    assert not is_ignored("src/data/raw/x", rules) and not is_ignored("app.py", rules)
