"""A host killed with SIGKILL: its children die with it, and a restart serves the last ready version."""

from __future__ import annotations

import json
import os
import signal

from tests.host.bundles import HELLO_SOURCE, file_member, hello_bundle, hello_manifest, make_tar
from tests.host.conftest import Host, wait_for

NEVER_READY = (
    HELLO_SOURCE
    + """

@chute.on_startup()
async def never_done(self) -> None:
    await asyncio.sleep(3600)
"""
)


def upload(host: Host, body: bytes, key: str) -> int:
    return host.api("POST", "/chutes", key=key, content=body, headers={"Content-Type": "application/gzip"}).status_code


def pids_alive(pids: list[int]) -> list[int]:
    """The pids still running: a zombie (dead, not yet reaped by an init that may never reap it) is not."""
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                state = next(line for line in status if line.startswith("State:"))
        except (FileNotFoundError, ProcessLookupError):
            continue
        if "Z" not in state.split()[1]:
            alive.append(pid)
    return alive


def test_killed_host_restarts_on_its_port_serving_the_last_ready_version(host_factory) -> None:
    host = host_factory()
    key = host.add_user("alice")
    work = host.data_dir.parent
    assert upload(host, hello_bundle(work / "v1.tgz"), key) == 202

    def ready() -> bool:
        return host.call("alice-hello", "/hello", key=key, json={"name": "v1"}).status_code == 200

    wait_for(ready, timeout=60, what="version 1 to be ready", host=host)
    # the pid as the host sees it (inside its sandbox an instance is pid 1)
    (serving,) = [i["pid"] for i in host.api("GET", "/chutes/hello", key=key).json()["instances"]]
    never_ready = make_tar(
        work / "v2.tgz",
        [
            file_member("manifest.json", json.dumps(hello_manifest()).encode()),
            file_member("app/host_hello.py", NEVER_READY.encode()),
        ],
    )
    assert upload(host, never_ready, key) == 202
    chute = wait_for(
        lambda: (c := host.api("GET", "/chutes/hello", key=key).json())["instances"] and c["instances"][0]["pid"] and c,
        timeout=30,
        what="version 2 to start",
    )
    assert chute["version"] == 2
    assert ready()  # version 1 serves while version 2 starts
    children = [serving, *(i["pid"] for i in chute["instances"] if i["pid"])]
    assert len(children) == 2

    host.proc.send_signal(signal.SIGKILL)
    host.proc.wait()
    wait_for(lambda: not pids_alive(children), timeout=15, what="the host's children to die with it")

    host.start()  # the same port and data dir, at once
    wait_for(ready, timeout=60, what="version 1 to be served again", host=host)
    chute = host.api("GET", "/chutes/hello", key=key).json()
    assert chute["version"] == 1
    assert sorted(os.listdir(host.data_dir / "chutes" / "alice-hello")) == ["1", "logs"]
    assert "version 2 was never ready" in host.log_text()
