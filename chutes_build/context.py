"""The build context: the user's files (after ignore rules) plus generated files, packed as a tar."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chutes_build.errors import BuildError
from chutes_build.ignore import has_negations, is_ignored, load_rules

APP_DIR = "app"  # user files live under app/ in the context, next to Dockerfile and .chutes/
GENERATED_DIR = ".chutes"
DEFAULT_WARN_BYTES = 100 * 1024 * 1024
GENERATED_MTIME = 315532800  # 1980-01-01, so generated members are byte-identical between builds


@dataclass(frozen=True)
class ContextFile:
    """A file or symlink of the user's context; `rel` is '/'-separated and relative to the root."""

    rel: str
    path: Path
    size: int
    link: str | None = None

    def __repr__(self) -> str:
        return f"ContextFile({self.rel!r}, size={self.size})"


@dataclass
class BuildContext:
    """The user's files under `root`, and generated members (name -> bytes or a host path)."""

    root: Path
    files: list[ContextFile]
    generated: dict[str, bytes | Path] = field(default_factory=dict)

    @property
    def user_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def has(self, rel: str) -> bool:
        """Tells whether the user's context holds `rel`, a file or a directory."""
        prefix = rel.rstrip("/") + "/"
        return any(f.rel == rel or f.rel.startswith(prefix) for f in self.files)

    def largest(self, count: int = 5) -> list[ContextFile]:
        return sorted(self.files, key=lambda f: (-f.size, f.rel))[:count]

    def listing(self) -> list[str]:
        """Returns one line per member of the tar, in tar order, with sizes."""
        lines = []
        for name, value in sorted(self.generated.items()):
            size = len(value) if isinstance(value, bytes) else value.stat().st_size
            lines.append(f"{format_size(size):>9}  {name}")
        for f in self.files:
            shown = f"{APP_DIR}/{f.rel}" + (f" -> {f.link}" if f.link is not None else "")
            lines.append(f"{format_size(f.size):>9}  {shown}")
        return lines

    def write_tar(self, out: io.BufferedIOBase) -> None:
        """Writes the context as an uncompressed tar to `out`."""
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, value in sorted(self.generated.items()):
                data = value if isinstance(value, bytes) else value.read_bytes()
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, GENERATED_MTIME
                tar.addfile(info, io.BytesIO(data))
            for f in self.files:
                info = tar.gettarinfo(str(f.path), arcname=f"{APP_DIR}/{f.rel}")
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                # Readable (and, where the owner may, executable) by the non-root user the chute runs as.
                info.mode |= 0o444 | (0o111 if info.mode & 0o100 else 0)
                if info.isreg():
                    with f.path.open("rb") as fh:
                        tar.addfile(info, fh)
                else:
                    tar.addfile(info)


def collect_context(root: Path) -> BuildContext:
    """Walks `root`, honouring `.chutesignore`, and refuses symlinks that lead outside it."""
    root = root.resolve()
    if not root.is_dir():
        raise BuildError(f"build context {str(root)!r} is not a directory; pass an existing one with --context")
    rules = load_rules(root)
    walk_excluded = has_negations(rules)
    return BuildContext(root, sorted(walk_files(root, rules, walk_excluded), key=lambda f: f.rel))


def walk_files(root: Path, rules: list, walk_excluded: bool) -> Iterator[ContextFile]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        kept = []
        for name in sorted(dirnames):
            path = here / name
            rel = rel_dir + name
            if path.is_symlink():
                filenames.append(name)  # a symlinked directory is packed as a link, never followed
            elif walk_excluded or not is_ignored(rel, rules):
                kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            rel = rel_dir + name
            if is_ignored(rel, rules):
                continue
            entry = describe_entry(root, here / name, rel)
            if entry is not None:
                yield entry


def describe_entry(root: Path, path: Path, rel: str) -> ContextFile | None:
    """Returns the context entry for `path`, or None for sockets and other special files."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        resolved = (path.parent / target).resolve()
        if not resolved.is_relative_to(root):
            raise BuildError(
                f"{rel!r} is a symlink to {str(resolved)!r}, outside the build context {str(root)!r}. "
                f"Copy the file into the context, or exclude it in {root / '.chutesignore'}."
            )
        return ContextFile(rel, path, 0, link=target)
    if stat.S_ISREG(st.st_mode):
        return ContextFile(rel, path, st.st_size)
    return None


def check_size(context: BuildContext, warn_bytes: int = DEFAULT_WARN_BYTES) -> str | None:
    """Returns a warning naming the largest files when the user's files exceed `warn_bytes`."""
    total = context.user_bytes
    if total <= warn_bytes:
        return None
    biggest = "\n".join(f"  {format_size(f.size):>9}  {f.rel}" for f in context.largest())
    return (
        f"the build context {str(context.root)!r} holds {format_size(total)} "
        f"(over {format_size(warn_bytes)}); the largest files:\n{biggest}\n"
        "Exclude what the image does not need in .chutesignore, or download large weights at startup."
    )


def format_size(size: int) -> str:
    """Formats a byte count for people: '512 B', '3.4 KiB', '1.2 GiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
