"""The runtime wheel packed from this checkout, and the offline wheelhouse of its dependencies."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tomllib
import zipfile
from base64 import urlsafe_b64encode
from pathlib import Path

import pytest

import chutes
from chutes_build.errors import BuildError
from chutes_build.wheel import (
    RUNTIME_REQUIREMENTS,
    build_runtime_wheel,
    canonical_name,
    fetch_wheelhouse,
    parse_requirement,
    runtime_pins,
)
from tests.wheels import write_wheel

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_is_byte_identical_for_identical_sources(tmp_path: Path) -> None:
    first = build_runtime_wheel(tmp_path / "a").read_bytes()
    second = build_runtime_wheel(tmp_path / "b").read_bytes()
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()


def test_the_wheel_holds_the_runtime_only_with_a_valid_record(tmp_path: Path) -> None:
    wheel = build_runtime_wheel(tmp_path)
    assert wheel.name == f"chutes-{chutes.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "chutes/__init__.py" in names and "chutes/image/base.py" in names and "chutes/serve.py" in names
        assert not any(n.startswith(("chutes_cli/", "chutes_host/")) or "__pycache__" in n for n in names)
        record = zf.read(f"chutes-{chutes.__version__}.dist-info/RECORD").decode().splitlines()
        for line in record:
            name, hashed, size = line.rsplit(",", 2)
            if not hashed:
                continue
            data = zf.read(name)
            assert hashed == "sha256=" + urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert int(size) == len(data)
        metadata = zf.read(f"chutes-{chutes.__version__}.dist-info/METADATA").decode()
    assert [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist")] == list(
        RUNTIME_REQUIREMENTS
    )


def test_the_wheel_installs_and_imports_without_the_cli(tmp_path: Path) -> None:
    wheel = build_runtime_wheel(tmp_path / "dist")
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    code = "import chutes, chutes.image, sys; print(chutes.__file__); assert 'docker' not in sys.modules"
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == str(target / "chutes" / "__init__.py")


def test_runtime_requirements_are_the_pyproject_dependencies_of_the_runtime() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert set(RUNTIME_REQUIREMENTS) <= set(declared)
    assert not any(name in " ".join(RUNTIME_REQUIREMENTS) for name in ("typer", "rich", "docker", "jinja2"))


def test_a_wheel_that_cannot_be_fetched_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("CHUTES_WHEEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    with pytest.raises(BuildError) as info:
        fetch_wheelhouse(["fastapi==0.110.0"])
    assert "could not download wheels for fastapi==0.110.0" in info.value.message
    assert "packages without wheels cannot be installed" in info.value.message
    assert not any((tmp_path / "cache").iterdir())  # nothing half-written


def test_pins_cover_the_whole_runtime_closure_at_the_installed_versions() -> None:
    from importlib.metadata import version

    pins = dict(pin.split("==") for pin in runtime_pins())
    names = {canonical_name(name) for name in pins}
    assert {"fastapi", "starlette", "pydantic", "pydantic-core", "uvicorn", "httpx", "anyio"} <= names
    assert "uvloop" in pins and "httptools" in pins  # from uvicorn's 'standard' extra
    assert not {"typer", "rich", "docker", "jinja2"} & set(pins)  # the CLI's, not the runtime's
    for name, pinned in pins.items():
        assert version(name) == pinned


def test_requirements_parse_into_name_and_extras() -> None:
    assert parse_requirement("uvicorn[standard]>=0.29") == ("uvicorn", {"standard"})
    assert parse_requirement("pkg [a, b] ; python_version >= '3.11'") == ("pkg", {"a", "b"})
    assert parse_requirement("plain") == ("plain", set())


def test_fetch_reports_what_pip_is_fetching(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    links = tmp_path / "links"
    links.mkdir()
    write_wheel(links, "chutes-test-helper", "chutes_test_helper", "ANSWER = 42\n")
    monkeypatch.setenv("CHUTES_WHEEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    lines: list[str] = []
    house = fetch_wheelhouse(["chutes-test-helper==1.0"], on_line=lines.append)
    assert (house / "chutes_test_helper-1.0-py3-none-any.whl").is_file()
    assert any(line.startswith("Processing ") and "chutes_test_helper-1.0" in line for line in lines), lines
    assert "Successfully downloaded chutes-test-helper" in lines
