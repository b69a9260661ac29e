"""The `--pid-file` of `chutes run`: where a script finds the process that stops just this server."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from chutes_cli.errors import CLIError


def check_pid_file(path: Path) -> Path:
    """Returns the absolute path, or fails (usage) when its directory is missing or not writable."""
    path = path.expanduser().resolve()
    if path.is_dir():
        raise CLIError(f"--pid-file {path} is a directory; name a file, e.g. --pid-file chutes.pid.", exit_code=2)
    if not path.parent.is_dir():
        raise CLIError(
            f"--pid-file: directory {path.parent} does not exist. Create it, or choose another path.", exit_code=2
        )
    if not os.access(path.parent, os.W_OK):
        raise CLIError(f"--pid-file: directory {path.parent} is not writable; choose another path.", exit_code=2)
    return path


def write_pid_file(path: Path | None, pid: int) -> None:
    """Writes `pid` to `path` whole (through a rename), so a reader never sees half a number."""
    if path is None:
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{pid}\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_pid_file(path: Path | None) -> None:
    """Removes the pid file, if there is one."""
    if path is not None:
        path.unlink(missing_ok=True)
