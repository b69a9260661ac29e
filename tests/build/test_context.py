"""Collecting the build context: .chutesignore, symlinks that escape, size warnings, the tar."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from chutes_build.context import APP_DIR, check_size, collect_context, format_size
from chutes_build.errors import BuildError
from chutes_build.ignore import is_ignored, parse_rules


def write(root: Path, rel: str, data: bytes | str = "x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def rels(root: Path) -> list[str]:
    return [f.rel for f in collect_context(root).files]


def test_defaults_skip_caches_and_vcs_folders(tmp_path: Path) -> None:
    for rel in (
        "app.py",
        "pkg/mod.py",
        ".git/HEAD",
        "pkg/__pycache__/mod.cpython-311.pyc",
        ".venv/bin/python",
        "a.pyc",
    ):
        write(tmp_path, rel)
    assert rels(tmp_path) == ["app.py", "pkg/mod.py"]


def test_chutesignore_excludes_and_negation_re_includes(tmp_path: Path) -> None:
    for rel in ("app.py", "notes/a.md", "notes/keep.md", "logs/x.log", "deep/y.log", "data/raw/big.bin", "raw/ok.txt"):
        write(tmp_path, rel)
    write(tmp_path, ".chutesignore", "# comment\nnotes/\n!notes/keep.md\n*.log\n/data/raw\n")
    assert rels(tmp_path) == ["app.py", "notes/keep.md", "raw/ok.txt"]


def test_unanchored_patterns_match_at_any_depth_and_anchored_only_at_the_root() -> None:
    rules = parse_rules(["*.bin", "/top.txt", "a/**/z.txt"])
    assert is_ignored("w.bin", rules) and is_ignored("x/y/w.bin", rules)
    assert is_ignored("top.txt", rules) and not is_ignored("sub/top.txt", rules)
    assert is_ignored("a/z.txt", rules) and is_ignored("a/b/c/z.txt", rules) and not is_ignored("b/z.txt", rules)


def test_a_symlink_out_of_the_context_is_refused_with_the_fix(tmp_path: Path) -> None:
    outside = write(tmp_path, "secret.txt", "s")
    root = tmp_path / "ctx"
    write(root, "app.py")
    os.symlink(outside, root / "leak.txt")
    with pytest.raises(BuildError) as info:
        collect_context(root)
    assert "'leak.txt' is a symlink to" in info.value.message
    assert "outside the build context" in info.value.message and ".chutesignore" in info.value.message


def test_an_ignored_escaping_symlink_is_fine(tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    write(root, "app.py")
    os.symlink("/etc", root / "etc-link")
    write(root, ".chutesignore", "etc-link\n")
    assert rels(root) == ["app.py"]


def test_symlinks_inside_the_context_are_kept_as_links(tmp_path: Path) -> None:
    write(tmp_path, "data/real.txt", "r")
    os.symlink("data/real.txt", tmp_path / "alias.txt")
    os.symlink("data", tmp_path / "data-dir")
    context = collect_context(tmp_path)
    links = {f.rel: f.link for f in context.files}
    assert links == {"alias.txt": "data/real.txt", "data-dir": "data", "data/real.txt": None}


def test_size_warning_lists_the_largest_files(tmp_path: Path) -> None:
    write(tmp_path, "small.py", "x" * 10)
    write(tmp_path, "weights/big.bin", b"\0" * 3000)
    write(tmp_path, "weights/mid.bin", b"\0" * 2000)
    context = collect_context(tmp_path)
    assert check_size(context, warn_bytes=10_000) is None
    warning = check_size(context, warn_bytes=1000)
    assert warning is not None
    assert "holds 4.9 KiB (over 1000 B)" in warning
    lines = warning.splitlines()
    assert "weights/big.bin" in lines[1] and "weights/mid.bin" in lines[2] and "small.py" in lines[3]
    assert ".chutesignore" in lines[-1]


def test_tar_holds_generated_files_and_the_code_under_app(tmp_path: Path) -> None:
    write(tmp_path, "app.py", "print(1)\n")
    script = write(tmp_path, "bin/run.sh", "#!/bin/sh\n")
    script.chmod(0o700)
    context = collect_context(tmp_path)
    context.generated["Dockerfile"] = b"FROM scratch\n"
    buffer = io.BytesIO()
    context.write_tar(buffer)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == ["Dockerfile", f"{APP_DIR}/app.py", f"{APP_DIR}/bin/run.sh"]
        assert tar.extractfile("app/app.py").read() == b"print(1)\n"
        assert members["app/bin/run.sh"].mode & 0o755 == 0o755  # readable by the non-root user
        assert members["app/app.py"].uid == 0


def test_a_missing_context_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="is not a directory; pass an existing one with --context"):
        collect_context(tmp_path / "nope")


@pytest.mark.parametrize(("size", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")])
def test_sizes_read_well(size: int, text: str) -> None:
    assert format_size(size) == text
