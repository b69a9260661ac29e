"""A wheel install ships every template: each file under templates/ is named by a data-files glob."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_template_is_shipped_in_the_wheel() -> None:
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped = {path for patterns in data_files.values() for pattern in patterns for path in ROOT.glob(pattern)}
    templates = {path for path in (ROOT / "templates").rglob("*") if path.is_file()}
    assert templates - shipped == set()
    assert ROOT / "Dockerfile.base" in shipped
    for target, patterns in data_files.items():  # each lands where chutes_build.templates looks for it
        for pattern in patterns:
            source_dir = Path(pattern).parent
            expected = Path("share/chutes") / (source_dir if pattern != "Dockerfile.base" else "templates")
            assert Path(target) == expected, (target, pattern)
