"""The host's reads and writes of files a tenant can write: FIFOs, links and devices are refused without
being waited on, sizes are capped, and a ready mark replaces whatever was in its place."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from chutes_host.sandbox.tenantfiles import (
    TenantFileError,
    TooManyEntries,
    is_regular,
    open_regular,
    read_regular,
    replace_file,
    walk_regular,
)


def within_a_second(fn):
    """Runs fn in a thread and fails (instead of hanging) if it takes longer than a second."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(1.0)
    assert not thread.is_alive(), "it blocked"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "plain.txt").write_text("plain")
    os.mkfifo(tmp_path / "work" / "fifo")
    (tmp_path / "work" / "link").symlink_to(tmp_path / "work" / "plain.txt")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.txt").write_text("secret")
    (tmp_path / "work" / "dirlink").symlink_to(tmp_path / "elsewhere")
    return tmp_path


def test_a_regular_file_is_read(root: Path) -> None:
    assert read_regular(root, "work/plain.txt", limit=5) == b"plain"
    fd, size = open_regular(root, "work/plain.txt")
    os.close(fd)
    assert size == 5
    assert is_regular(root, "work/plain.txt")


def test_a_fifo_is_refused_at_once(root: Path) -> None:
    with pytest.raises(TenantFileError, match="work/fifo is a FIFO, not a regular file"):
        within_a_second(lambda: read_regular(root, "work/fifo", limit=10))
    assert not within_a_second(lambda: is_regular(root, "work/fifo"))


def test_links_are_never_followed(root: Path) -> None:
    with pytest.raises(TenantFileError, match="work/link is a symbolic link, not a regular file"):
        read_regular(root, "work/link", limit=10)
    with pytest.raises(TenantFileError, match="work/dirlink is a symbolic link, not a directory"):
        read_regular(root, "work/dirlink/secret.txt", limit=10)
    assert not is_regular(root, "work/dirlink/secret.txt")
    assert list(walk_regular(root, "work/dirlink")) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_is_refused_unopened(root: Path) -> None:
    os.mknod(root / "work" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    with pytest.raises(TenantFileError, match="work/null is a character device, not a regular file"):
        open_regular(root, "work/null")


def test_a_file_larger_than_the_limit_is_refused(root: Path) -> None:
    with pytest.raises(TenantFileError, match="work/plain.txt is larger than 4 bytes"):
        read_regular(root, "work/plain.txt", limit=4)


def test_missing_files_and_escapes_are_not_found(root: Path) -> None:
    for relative in ("work/none.txt", "nowhere/x", "work/../elsewhere/secret.txt", ""):
        with pytest.raises(FileNotFoundError):
            read_regular(root, relative, limit=10)


def test_the_walk_lists_regular_files_only_and_stays_inside(root: Path) -> None:
    (root / "work" / "sub").mkdir()
    (root / "work" / "sub" / "b.bin").write_bytes(b"12")
    assert list(walk_regular(root, "work")) == [("plain.txt", 5), ("sub/b.bin", 2)]
    assert list(walk_regular(root, "missing")) == []


def test_the_walk_stops_at_a_depth_that_would_cost_a_descriptor_per_level(root: Path) -> None:
    deep = root / "work" / "deep"
    path = deep
    for _ in range(80):
        path = path / "d"
    path.mkdir(parents=True)
    (path / "far.txt").write_text("far")
    (deep / "near.txt").write_text("near")
    found = dict(walk_regular(root, "work/deep"))
    assert found == {"near.txt": 4}


def test_the_walk_stops_past_its_cap_of_entries_whatever_their_kind(root: Path) -> None:
    many = root / "work" / "many"
    (many / "sub").mkdir(parents=True)
    for index in range(5):
        (many / f"f{index}").touch()
        (many / "sub" / f"g{index}").touch()
    os.mkfifo(many / "pipe")
    assert len(list(walk_regular(root, "work/many", max_entries=12))) == 10  # 10 files, sub and pipe
    with pytest.raises(TooManyEntries, match="work/many holds more than 11 files and directories"):
        list(walk_regular(root, "work/many", max_entries=11))
    with pytest.raises(TooManyEntries):  # a single directory past the cap is not read whole
        list(walk_regular(root, "work/many/sub", max_entries=4))


def test_a_mark_replaces_a_fifo_and_a_link_without_writing_through_them(root: Path) -> None:
    within_a_second(lambda: replace_file(root, "work/fifo", b"ok\n"))
    assert (root / "work" / "fifo").read_bytes() == b"ok\n"
    replace_file(root, "work/link", b"ok\n")
    assert not (root / "work" / "link").is_symlink()
    assert (root / "work" / "plain.txt").read_text() == "plain"
    with pytest.raises(TenantFileError, match="work/dirlink is a symbolic link, not a directory"):
        replace_file(root, "work/dirlink/secret.txt", b"x")
    assert (root / "elsewhere" / "secret.txt").read_text() == "secret"
