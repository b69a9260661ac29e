"""Rolling a chute back after a restart takes the manifest from the host's own records (a real SQLite
file): never from the version's directory, and not at all for a version an older host recorded without one."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from chutes_host.config import HostConfig
from chutes_host.deploy.deployments import install_bundle, load_specs, record_ready
from chutes_host.store.db import Database
from chutes_host.store.models import User
from tests.host.bundles import hello_bundle, hello_manifest


@pytest.fixture
def config(tmp_path: Path) -> HostConfig:
    return HostConfig(data_dir=tmp_path / "data")


@pytest.fixture
def db(config: HostConfig) -> Iterator[Database]:
    database = Database(config.database_url)
    with database.session() as session:
        session.add(User(name="alice"))
    yield database
    database.close()


def deploy_two_versions(config: HostConfig, db: Database, tmp_path: Path) -> None:
    """Deploys version 1 (ready) and version 2 (never ready), as a host stopped while 2 started leaves them."""
    first = install_bundle(hello_bundle_file(tmp_path / "v1.tgz"), config, db, 1, public=None)
    record_ready(db, first)
    second = hello_manifest(cords=[{"name": "other", "path": "/other", "method": "POST", "stream": False}])
    install_bundle(hello_bundle_file(tmp_path / "v2.tgz", second), config, db, 1, public=None)


def hello_bundle_file(path: Path, manifest: dict | None = None) -> Path:
    hello_bundle(path, manifest)
    return path


def test_the_rollback_ignores_what_the_chute_wrote_in_its_manifest(config: HostConfig, db: Database, tmp_path) -> None:
    deploy_two_versions(config, db, tmp_path)
    on_disk = config.chutes_dir / "alice-hello" / "1" / "manifest.json"
    on_disk.write_text(json.dumps(hello_manifest(allow_external_egress=True, concurrency=64, name="hello")))

    (spec,) = load_specs(config, db)
    assert spec.version == 1
    assert [c["path"] for c in spec.manifest["cords"]] == ["/hello"]
    assert spec.manifest["allow_external_egress"] is False and spec.manifest["concurrency"] == 1


def test_a_version_recorded_without_its_manifest_is_not_rolled_back_to(
    config: HostConfig,
    db: Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deploy_two_versions(config, db, tmp_path)
    with sqlite3.connect(config.data_dir / "host.db") as conn:  # as a host from before manifests were kept left it
        conn.execute("UPDATE deploys SET manifest_json = NULL")

    with caplog.at_level(logging.WARNING, logger="chutes.host"):
        (spec,) = load_specs(config, db)
    assert spec.version == 2
    assert [c["path"] for c in spec.manifest["cords"]] == ["/other"]
    assert "version 1 is not served again: it was deployed by an older host" in caplog.text
    with sqlite3.connect(config.data_dir / "host.db") as conn:  # the current version's record gets its manifest
        kept = conn.execute("SELECT manifest_json FROM deploys WHERE version = 2").fetchone()[0]
    assert json.loads(kept)["cords"] == spec.manifest["cords"]
