"""The host keeps its data dir to itself: 0700, and the SQLite database 0600, whoever creates them."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.host.conftest import run_cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_host_creates_a_private_data_dir(host_factory) -> None:
    host = host_factory()
    assert mode(host.data_dir) == 0o700
    assert mode(host.data_dir / "host.db") == 0o600
    host.add_user("alice")
    assert mode(host.data_dir / "host.db") == 0o600


def test_users_add_on_a_fresh_machine_creates_them_private_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "home").mkdir()
    result = run_cli("host", "users", "add", "alice", "--data-dir", str(data), home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert mode(data) == 0o700
    assert mode(data / "host.db") == 0o600


def test_an_existing_open_data_dir_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "host.db").touch(mode=0o644)
    (data / "host.db").chmod(0o644)
    (tmp_path / "home").mkdir()
    result = run_cli("host", "users", "add", "alice", "--data-dir", str(data), home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert mode(data) == 0o700
    assert mode(data / "host.db") == 0o600
