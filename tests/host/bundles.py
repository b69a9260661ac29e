"""Hand-made deploy bundles, good and bad, for host tests."""

from __future__ import annotations

import io
import json
import tarfile
import zlib
from pathlib import Path

from tests.host.conftest import FIXTURES

HELLO_SOURCE = (FIXTURES / "host_hello.py").read_text()


def hello_manifest(username: str = "alice", name: str = "hello", **extra) -> dict:
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


def link_chain(victim: str) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """Members that each pass a lexical check, but whose last one, written through the links before
    it, lands at victim: a path relative to the grandparent of the unpacking directory (on a host,
    the data dir: the host unpacks into DATA/tmp/unpack-*)."""
    return [
        link_member("app/a/b/c/d/up", "../.."),  # app/a/b
        link_member("app/a/b/c/d/up/esc", "../../../.."),  # from app/a/b: the unpacking directory's parent
        file_member(f"app/a/b/c/d/up/esc/../{victim}", b"OWNED = 'written by eve'\n"),
    ]


def header_bomb(path: Path, *, payload_mib: int, kind: bytes = tarfile.GNUTYPE_LONGNAME) -> int:
    """Writes a gzip tar whose first header is a GNU long name (or PAX) record of payload_mib MiB of one
    byte, followed by a hello chute; returns the file's size. It compresses about a thousandfold."""
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = kind, payload_mib << 20
    chunk = (b"a" if kind == tarfile.GNUTYPE_LONGNAME else b"9") * (1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip container
    with open(path, "wb") as f:
        f.write(packer.compress(header.tobuf(tarfile.GNU_FORMAT)))
        for _ in range(payload_mib):
            f.write(packer.compress(chunk))
        rest = io.BytesIO()
        with tarfile.open(fileobj=rest, mode="w") as tar:
            for info, data in (file_member("manifest.json", json.dumps(hello_manifest()).encode()),):
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        f.write(packer.compress(rest.getvalue()))
        f.write(packer.flush())
    return path.stat().st_size
