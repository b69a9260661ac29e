"""The scale a user sets with `chutes chutes scale` outlives redeploys and host restarts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import select

from chutes_host.store.db import Database
from chutes_host.store.models import Deployment, User
from tests.host.conftest import Host, make_project, wait_for


def ready_instances(host: Host, key: str) -> list[str]:
    chute = host.api("GET", "/chutes/hello", key=key).json()
    return [i["phase"] for i in chute["instances"]]


def test_redeploy_keeps_the_scale_the_user_set(host_factory, tmp_path: Path) -> None:
    host = host_factory()
    alice = host.add_user("alice")
    project = make_project(tmp_path / "project", "host_hello.py")
    assert host.cli("deploy", "host_hello:chute", key=alice, cwd=project).returncode == 0
    scaled = host.cli("chutes", "scale", "hello", "2", key=alice)
    assert scaled.returncode == 0, scaled.stderr

    redeployed = host.cli("deploy", "host_hello:chute", key=alice, cwd=project)
    assert redeployed.returncode == 0, redeployed.stderr
    chute = host.api("GET", "/chutes/hello", key=alice).json()
    assert chute["version"] == 2 and chute["max_instances"] == 2
    wait_for(lambda: ready_instances(host, alice) == ["ready", "ready"], timeout=30, what="two instances", host=host)

    host.stop()
    host.start()
    assert host.api("GET", "/chutes/hello", key=alice).json()["max_instances"] == 2
    wait_for(lambda: ready_instances(host, alice) == ["ready", "ready"], timeout=30, what="two instances", host=host)


def test_a_database_from_before_the_scale_column_gains_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'host.db'}"
    db = Database(url)
    with db.session() as session:
        user = User(name="alice")
        session.add(user)
        session.flush()
        session.add(Deployment(slug="alice-x", name="x", owner_id=user.id, entrypoint="x:chute", manifest_json="{}"))
    db.close()
    with sqlite3.connect(tmp_path / "host.db") as conn:  # what an older host left behind
        conn.execute("ALTER TABLE chutes DROP COLUMN scaled_to")

    db = Database(url)
    with db.session() as session:
        row = session.execute(select(Deployment)).scalar_one()
        assert row.slug == "alice-x" and row.scaled_to is None
        row.scaled_to = 3
    with db.session() as session:
        assert session.execute(select(Deployment.scaled_to)).scalar_one() == 3
    db.close()
