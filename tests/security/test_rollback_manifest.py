"""A restarted host rolls a chute back to its last ready version with the manifest it recorded at that
deploy: eve rewriting her version's manifest.json (egress, cords, concurrency), or replacing it with a
link to bob's, changes nothing of what the host serves or records."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

from tests.host.bundles import HELLO_SOURCE, file_member, hello_manifest, make_tar
from tests.host.conftest import Host, wait_for
from tests.host.test_restart import NEVER_READY, pids_alive

TAMPERS = (
    HELLO_SOURCE
    + '''

@chute.cord(public_api_path="/tamper")
async def tamper(self, how: str, target: str = "") -> dict:
    """Rewrites this version's manifest.json, or makes it a link to `target`."""
    import json
    import pathlib

    manifest = pathlib.Path(__file__).resolve().parents[1] / "manifest.json"
    if how == "rewrite":
        data = json.loads(manifest.read_text())
        extra = {"name": "extra", "path": "/extra", "method": "GET", "stream": False}
        data.update(allow_external_egress=True, concurrency=64, cords=[*data["cords"], extra])
        manifest.write_text(json.dumps(data))
    else:
        manifest.unlink()
        manifest.symlink_to(target)
    return {"done": how}
'''
)
CORDS = [
    {"name": "say_hello", "path": "/hello", "method": "POST", "stream": False},
    {"name": "tamper", "path": "/tamper", "method": "POST", "stream": False},
]


def bundle(path: Path, user: str, name: str, source: str) -> bytes:
    manifest = hello_manifest(user, name, cords=CORDS)
    source = source.replace('username="alice", name="hello"', f'username="{user}", name="{name}"')
    return make_tar(
        path,
        [
            file_member("manifest.json", json.dumps(manifest).encode()),
            file_member("app/host_hello.py", source.encode()),
        ],
    )


def deploy(host: Host, body: bytes, key: str) -> None:
    resp = host.api("POST", "/chutes", key=key, content=body, headers={"Content-Type": "application/gzip"})
    assert resp.status_code == 202, resp.text


def serves(host: Host, slug: str, key: str) -> bool:
    return host.call(slug, "/hello", key=key, json={"name": "x"}).status_code == 200


def recorded(host: Host, slug: str) -> tuple[str, dict]:
    with sqlite3.connect(host.data_dir / "host.db") as db:
        name, manifest = db.execute("SELECT name, manifest_json FROM chutes WHERE slug = ?", (slug,)).fetchone()
    return name, json.loads(manifest)


def test_a_rollback_serves_the_manifest_the_host_recorded_not_the_chutes_file(host_factory, sandbox_available) -> None:
    host = host_factory("--sandbox", "bwrap")
    eve, bob = host.add_user("eve"), host.add_user("bob")
    work = host.data_dir.parent
    deploy(host, bundle(work / "vault.tgz", "bob", "vault", HELLO_SOURCE), bob)
    for name in ("rewrite", "relink"):
        deploy(host, bundle(work / f"{name}-1.tgz", "eve", name, TAMPERS), eve)
    for slug, key in (("bob-vault", bob), ("eve-rewrite", eve), ("eve-relink", eve)):
        wait_for(lambda s=slug, k=key: serves(host, s, k), timeout=90, what=f"{slug} to be ready", host=host)
    for name in ("rewrite", "relink"):  # version 2 never becomes ready: a restart rolls back to version 1
        deploy(host, bundle(work / f"{name}-2.tgz", "eve", name, NEVER_READY), eve)
    deployed = {slug: recorded(host, slug) for slug in ("eve-rewrite", "eve-relink")}

    def started(name: str) -> list[int]:
        chute = host.api("GET", f"/chutes/{name}", key=eve).json()
        return [i["pid"] for i in chute["instances"] if i["pid"]] if chute["version"] == 2 else []

    wait_for(lambda: started("rewrite") and started("relink"), timeout=60, what="the versions 2 to start", host=host)
    # version 1 still serves, and rewrites its own manifest.json
    assert host.call("eve-rewrite", "/tamper", key=eve, json={"how": "rewrite"}).status_code == 200
    bobs = host.data_dir / "chutes" / "bob-vault" / "1" / "manifest.json"
    assert host.call("eve-relink", "/tamper", key=eve, json={"how": "link", "target": str(bobs)}).status_code == 200
    assert (host.data_dir / "chutes" / "eve-relink" / "1" / "manifest.json").is_symlink()
    children = [
        i["pid"] for n in ("rewrite", "relink") for i in host.api("GET", f"/chutes/{n}", key=eve).json()["instances"]
    ]

    host.proc.send_signal(signal.SIGKILL)
    host.proc.wait()
    wait_for(lambda: not pids_alive(children), timeout=15, what="the host's children to die with it")
    host.start()
    for slug in ("eve-rewrite", "eve-relink"):
        wait_for(lambda s=slug: serves(host, s, eve), timeout=90, what=f"{slug} version 1 again", host=host)

    for slug, name in (("eve-rewrite", "rewrite"), ("eve-relink", "relink")):
        chute = host.api("GET", f"/chutes/{name}", key=eve).json()
        assert chute["version"] == 1, chute
        assert [c["path"] for c in chute["cords"]] == ["/hello", "/tamper"], chute
        record_name, manifest = recorded(host, slug)
        assert record_name == name
        assert manifest == deployed[slug][1], manifest
        assert manifest["username"] == "eve" and not manifest.get("allow_external_egress"), manifest
        assert manifest.get("concurrency", 1) != 64
    assert "version 2 was never ready, so version 1 is served again" in host.log_text()
