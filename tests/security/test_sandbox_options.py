"""`chutes host serve` sandbox options are checked up front, and a host that cannot sandbox says so."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import free_port
from tests.host.conftest import Host, run_cli


def serve(tmp_path: Path, *args: str, **env: str):
    port = str(free_port())
    return run_cli("host", "serve", "--port", port, "--data-dir", str(tmp_path / "data"), *args, home=tmp_path, **env)


def test_a_bad_uid_range_is_a_usage_error(tmp_path: Path) -> None:
    for bad in ("5-1", "10-20", "abc", "3000000"):
        result = serve(tmp_path, "--sandbox-uids", bad, timeout=60)
        assert result.returncode == 2, result.stderr
        assert "--sandbox-uids must be FIRST-LAST with 1000 <= FIRST <= LAST" in result.stderr


def test_a_host_that_must_sandbox_refuses_to_start_without_bubblewrap(tmp_path: Path) -> None:
    result = serve(tmp_path, "--sandbox", "bwrap", PATH=str(tmp_path / "empty"), timeout=60)
    assert result.returncode == 1
    assert "Error: cannot sandbox chutes: bubblewrap is not installed" in result.stderr


def test_without_bubblewrap_the_host_serves_unsandboxed_and_says_why(tmp_path: Path) -> None:
    host = Host(data_dir=tmp_path / "data", home=tmp_path, port=free_port(), env={"PATH": str(tmp_path / "empty")})
    try:
        host.start()
        assert "WITHOUT a sandbox (bubblewrap is not installed" in host.log_text()
    finally:
        host.stop()
