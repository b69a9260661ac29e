"""`chutes host serve --executor kubernetes` refuses bad options and a missing cluster before it serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.host.conftest import run_cli


def serve(tmp_path: Path, *args: str, **env: str):
    data = str(tmp_path / "data")
    return run_cli("host", "serve", "--executor", "kubernetes", "--data-dir", data, "--port", str(free_port()), *args,
                   home=tmp_path, timeout=60, **env)  # fmt: skip


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--pod-cpu", "lots", "--pod-cpu must be a CPU quantity like 1, 2 or 500m; got 'lots'"),
        ("--pod-memory", "8 GB", "--pod-memory must be a memory quantity like 8Gi or 512Mi; got '8 GB'"),
        ("--namespace", "My_Space", "--namespace must be a Kubernetes namespace name"),
    ],
)
def test_bad_pod_options_are_usage_errors(tmp_path: Path, option: str, value: str, says: str) -> None:
    result = serve(tmp_path, option, value)
    assert result.returncode == 2
    assert says in result.stderr


def test_no_cluster_configured_is_a_clear_error(tmp_path: Path) -> None:
    result = serve(tmp_path, KUBECONFIG=str(tmp_path / "missing.yaml"))
    assert result.returncode == 1
    assert "no Kubernetes cluster configured" in result.stderr and "--kubeconfig FILE" in result.stderr
