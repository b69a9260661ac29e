"""Host settings: chute URLs, database location, and the serve options that are checked up front."""

from __future__ import annotations

from pathlib import Path

from chutes_host.config import HostConfig
from tests.conftest import free_port
from tests.host.conftest import run_cli


def test_chute_url_follows_domain_and_port(tmp_path: Path) -> None:
    assert HostConfig(data_dir=tmp_path).chute_url("alice-hello") == "http://alice-hello.localhost:8080"
    assert (
        HostConfig(data_dir=tmp_path, domain="ai.example.com", port=443).chute_url("a-b")
        == "https://a-b.ai.example.com"
    )
    behind_proxy = HostConfig(data_dir=tmp_path, public_url="https://{slug}.chutes.example.com")
    assert behind_proxy.chute_url("alice-hello") == "https://alice-hello.chutes.example.com"


def test_database_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    assert HostConfig(data_dir=tmp_path).database_url == f"sqlite:///{tmp_path / 'host.db'}"
    assert HostConfig(data_dir=tmp_path, db_url="postgresql://db/x").database_url == "postgresql://db/x"


def test_public_url_without_slug_is_a_usage_error(tmp_path: Path) -> None:
    for template in ("https://chutes.example.com", "https://{slug}.{zone}.example.com"):
        result = run_cli(
            "host",
            "serve",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path),
            "--public-url",
            template,
            home=tmp_path,
            timeout=60,
        )
        assert result.returncode == 2
        assert "--public-url must contain {slug}" in result.stderr
