"""What `chutes deploy` puts in a bundle: the manifest, the chute's directory after .chutesignore, requirements."""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from chutes_cli.commands.deploy import locate_entrypoint, make_bundle
from chutes_cli.errors import CLIError
from tests.host.conftest import FIXTURES


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "helpers").mkdir()
    shutil.copy(FIXTURES / "host_hello.py", root / "host_hello.py")
    (root / "helpers" / "__init__.py").write_text("")
    (root / "data" / "weights.bin").write_bytes(b"\0" * 1024)
    (root / ".chutesignore").write_text("data/\n")
    (root / "requirements.txt").write_text("rich\n")
    monkeypatch.chdir(root)
    yield root
    sys.modules.pop("host_hello", None)


def members(bundle: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(bundle, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def test_bundle_holds_manifest_code_and_requirements_but_not_ignored_files(project: Path, tmp_path: Path) -> None:
    bundle, manifest = make_bundle("host_hello:chute", None, tmp_path / "b.tgz", public=True)
    names = members(bundle)
    assert "manifest.json" in names and "requirements.txt" in names
    assert "app/host_hello.py" in names and "app/helpers/__init__.py" in names
    assert not any(name.startswith("app/data") for name in names)
    with tarfile.open(bundle, "r:gz") as tar:
        stored = json.loads(tar.extractfile("manifest.json").read())
    assert stored == manifest
    assert stored["entrypoint"] == "host_hello:chute"
    assert stored["public"] is True
    assert stored["slug"] == "alice-hello"
    assert [c["path"] for c in stored["cords"]] == ["/hello", "/count", "/whoami", "/headers"]
    assert stored["build_image"] is False


def test_file_reference_names_the_module_inside_the_context(project: Path) -> None:
    assert locate_entrypoint(str(project / "host_hello.py") + ":chute", None) == (project, "host_hello:chute")
    assert locate_entrypoint("helpers/../host_hello.py:chute", project)[1] == "host_hello:chute"


def test_module_outside_the_context_is_refused(project: Path, tmp_path: Path) -> None:
    with pytest.raises(CLIError, match="not inside the context directory"):
        locate_entrypoint(str(project / "host_hello.py") + ":chute", project / "helpers")
    with pytest.raises(CLIError, match="is not a file under"):
        locate_entrypoint("nowhere:chute", None)
