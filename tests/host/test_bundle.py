"""Packing and safe unpacking of deploy bundles, on real files."""

from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

import pytest

from chutes_host.bundle import BundleError, pack_bundle, unpack_bundle
from chutes_host.gateway import slug_from_host
from tests.host.bundles import file_member, hello_bundle, hello_manifest, link_member

LIMITS = {"max_bytes": 1 << 20, "max_files": 50}


def test_pack_then_unpack_round_trips(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "host_hello.py").write_text((Path(__file__).parents[1] / "fixtures/chutes/host_hello.py").read_text())
    (src / "pkg" / "util.py").write_text("X = 1\n")
    files = [(src / "host_hello.py", "host_hello.py"), (src / "pkg" / "util.py", "pkg/util.py")]
    pack_bundle(tmp_path / "b.tgz", manifest=hello_manifest(), files=files, requirements="rich\n")
    manifest = unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)
    assert manifest.slug == "alice-hello"
    assert manifest.entrypoint == "host_hello:chute"
    assert (tmp_path / "out" / "app" / "pkg" / "util.py").read_text() == "X = 1\n"
    assert (tmp_path / "out" / "requirements.txt").read_text() == "rich\n"


def test_symlink_inside_app_is_kept(tmp_path: Path) -> None:
    hello_bundle(tmp_path / "b.tgz", None, link_member("app/alias.py", "host_hello.py"))
    unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)
    assert (tmp_path / "out" / "app" / "alias.py").is_symlink()


def test_unpacked_size_limit_catches_a_compression_bomb(tmp_path: Path) -> None:
    bomb = file_member("app/zeros.bin", b"\0" * (2 << 20))
    data = hello_bundle(tmp_path / "b.tgz", None, bomb)
    assert len(data) < 64 * 1024
    with pytest.raises(BundleError, match="more than 1 MiB") as info:
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)
    assert info.value.status == 413
    assert not (tmp_path / "out").exists()


def test_file_count_limit(tmp_path: Path) -> None:
    many = [file_member(f"app/f{i}.py", b"") for i in range(60)]
    hello_bundle(tmp_path / "b.tgz", None, *many)
    with pytest.raises(BundleError, match="more than 50 files"):
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)
    assert not (tmp_path / "out").exists()


def test_device_and_fifo_members_are_refused(tmp_path: Path) -> None:
    fifo = tarfile.TarInfo("app/pipe")
    fifo.type = tarfile.FIFOTYPE
    hello_bundle(tmp_path / "b.tgz", None, (fifo, None))
    with pytest.raises(BundleError, match="not a regular file"):
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)


def test_unexpected_top_level_member_is_refused(tmp_path: Path) -> None:
    hello_bundle(tmp_path / "b.tgz", None, file_member("Dockerfile", b"FROM scratch\n"))
    with pytest.raises(BundleError, match="only manifest.json, requirements.txt and app/"):
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)


def test_slug_must_match_username_and_name(tmp_path: Path) -> None:
    manifest = hello_manifest(slug="alice-other")
    hello_bundle(tmp_path / "b.tgz", manifest)
    with pytest.raises(BundleError, match="should be 'alice-hello'"):
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)


def test_plain_gzip_is_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "b.tgz").write_bytes(gzip.compress(b"hello"))
    with pytest.raises(BundleError, match="not a readable gzip tar"):
        unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)


@pytest.mark.parametrize(
    ("host", "slug"),
    [
        ("alice-hello.localhost:8080", "alice-hello"),
        ("ALICE-hello.LocalHost", "alice-hello"),
        ("alice-hello.localhost.", "alice-hello"),
        ("localhost:8080", None),
        ("127.0.0.1:8080", None),
        ("a.b.localhost", None),
        (".localhost", None),
        ("alice-hello.example.com", None),
        (None, None),
    ],
)
def test_slug_from_host(host: str | None, slug: str | None) -> None:
    assert slug_from_host(host, ".localhost") == slug


@pytest.mark.parametrize("filters", ["this Python's", "none (before 3.11.4)"])
def test_unpacked_files_lose_set_id_bits_and_foreign_owners(tmp_path: Path, monkeypatch, filters: str) -> None:  # noqa: ANN001
    if filters.startswith("none"):  # Debian 12's Python 3.11.2: no extraction filters, no `filter` argument
        extract = tarfile.TarFile.extractall

        def extractall_without_filters(self, path=".", members=None, *, numeric_owner=False):  # noqa: ANN001, ANN202
            return extract(self, path, members, numeric_owner=numeric_owner, filter="fully_trusted")

        monkeypatch.delattr(tarfile, "data_filter")
        monkeypatch.setattr(tarfile.TarFile, "extractall", extractall_without_filters)
    setuid, shared = file_member("app/run.sh", b"#!/bin/sh\n"), tarfile.TarInfo("app/shared")
    setuid[0].mode, setuid[0].uid, setuid[0].gid, setuid[0].uname = 0o6777, 4242, 4242, "nobody-here"
    shared.type, shared.mode, shared.uid = tarfile.DIRTYPE, 0o1777, 4242
    hello_bundle(tmp_path / "b.tgz", None, setuid, (shared, None))
    unpack_bundle(tmp_path / "b.tgz", tmp_path / "out", **LIMITS)
    script, folder = (tmp_path / "out" / "app" / "run.sh").stat(), (tmp_path / "out" / "app" / "shared").stat()
    assert oct(script.st_mode & 0o7777) == oct(0o755)
    assert folder.st_mode & 0o7022 == 0
    assert (script.st_uid, script.st_gid, folder.st_uid) == (os.getuid(), os.getgid(), os.getuid())
