"""Hand-made deploy bundles, good and bad, for host tests."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from tests.host.conftest import FIXTURES

HELLO_SOURCE = (FIXTURES / "host_hello.py").read_text()


def hello_manifest(username: str = "alice", name: str = "hello", **extra) -> dict:  # noqa: ANN003
    source = HELLO_SOURCE.replace('username="alice", name="hello"', f'username="{username}", name="{name}"')
    assert source != HELLO_SOURCE or (username, name) == ("alice", "hello")
    return {
        "slug": f"{username}-{name}",
        "username": username,
        "name": name,
        "entrypoint": "host_hello:chute",
        "cords": [{"name": "say_hello", "path": "/hello", "method": "POST", "stream": False}],
        "node_selector": {"gpu_count": 0},
        **extra,
    }


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], *, mode: str = "w:gz") -> bytes:
    """Writes a tar of (info, data) members and returns its bytes."""
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path.read_bytes()


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info, data


def link_member(name: str, target: str, *, hard: bool = False) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info, None


def hello_bundle(path: Path, manifest: dict | None = None, *extra: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """Returns a bundle of the hello chute (with the manifest's user and name), plus extra members."""
    manifest = manifest or hello_manifest()
    source = HELLO_SOURCE.replace(
        'username="alice", name="hello"', f'username="{manifest["username"]}", name="{manifest["name"]}"'
    )
    members = [
        file_member("manifest.json", json.dumps(manifest).encode()),
        file_member("app/host_hello.py", source.encode()),
        *extra,
    ]
    return make_tar(path, members)
