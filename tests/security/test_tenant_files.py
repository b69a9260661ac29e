"""A tenant (eve) leaves FIFOs, links and devices where the host reads: a job's result and outputs, the
chute's requirements.txt and its virtualenv's ready mark. The host refuses each at once, says why, and
keeps answering everyone within a second (a real host, sandboxed, as root where the machine allows)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator

import pytest

from tests.host.conftest import Host
from tests.security.conftest import ANSWER_WITHIN, quick, start_hostile_host

FINISHED = ("succeeded", "failed", "cancelled", "timed_out", "lost")


@pytest.fixture(scope="module")
def host(tmp_path_factory, sandbox_available) -> Iterator[Host]:
    host = start_hostile_host(tmp_path_factory.mktemp("tenant-files"), "hostile_files.py")
    yield host
    host.stop()


def attack(host: Host, cord: str, **params) -> dict:
    resp = host.call("eve-files", cord, key=host.eve, json=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def run_job(host: Host, name: str, *, timeout: float = 90) -> dict:
    """Starts a job and polls it until it ends, each poll (and a call of the chute) answered within a second."""
    started = quick(host, "POST", f"/chutes/files/jobs/{name}", json={})
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = quick(host, "GET", f"/jobs/{job_id}").json()
        if job["status"] in FINISHED:
            return job
        pong = host.call("eve-files", "/ping", key=host.eve, timeout=ANSWER_WITHIN)
        assert pong.status_code == 200, pong.text
        time.sleep(0.2)
    pytest.fail(f"job {name} did not end within {timeout} s: {job}\n{host.log_text()[-3000:]}")


def test_a_fifo_as_result_fails_the_job_not_the_host(host: Host) -> None:
    job = run_job(host, "fifo_result")
    assert job["status"] == "failed", job
    assert "result.json is a FIFO, not a regular file" in job["reason"], job
    assert job["exit_code"] == 0


def test_outputs_that_are_no_regular_files_are_refused_at_once(host: Host) -> None:
    job = run_job(host, "odd_outputs")
    assert job["status"] == "succeeded", job
    assert job["result"]["left"] == ["link", "ok.txt", "pipe", "sub"]
    assert job["outputs"] == [{"path": "ok.txt", "size": 3}]
    outputs = host.data_dir / "jobs" / job["id"] / "work" / "outputs"
    # a sandboxed chute cannot make a device node (no CAP_MKNOD); the test, as root, stands in for one that could
    if os.geteuid() == 0:
        os.mknod(outputs / "device", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    refused = {"pipe": "a FIFO", "link": "a symbolic link", "sub/host.db": "a symbolic link, not a directory"}
    if os.geteuid() == 0:
        refused["device"] = "a character device"
    for name, what in refused.items():
        resp = quick(host, "GET", f"/jobs/{job['id']}/outputs/{name}")
        assert resp.status_code == 404, resp.text
        assert f"output {name.split('/')[0]} is {what}" in resp.json()["detail"], resp.text
    assert quick(host, "GET", f"/jobs/{job['id']}/outputs/ok.txt").content == b"ok\n"


@pytest.mark.parametrize(("kind", "what"), [("fifo", "a FIFO"), ("link", "a symbolic link")])
def test_a_requirements_txt_that_is_no_regular_file_fails_the_build_not_the_host(
    host: Host, kind: str, what: str
) -> None:
    attack(host, "/swap", name="pipe", kind="fifo")  # a link's target that would block pip inside the sandbox
    attack(host, "/swap", name="requirements.txt", kind=kind, target="pipe")
    attack(host, "/swap", name="venv/.chutes-env-ready", kind="none")  # the next job makes the virtualenv again
    try:
        job = run_job(host, "quick")
        assert job["status"] == "failed", job
        assert f"requirements.txt is {what}, not a regular file" in job["reason"], job
        assert "make requirements.txt a regular file again" in job["reason"], job
    finally:
        attack(host, "/swap", name="requirements.txt", kind="none")
    assert run_job(host, "quick")["status"] == "succeeded"


def test_a_ready_mark_made_a_fifo_during_the_build_is_replaced_not_waited_on(host: Host) -> None:
    mark = host.data_dir / "chutes" / "eve-files" / "1" / "venv" / ".chutes-env-ready"
    attack(host, "/plant_mark")
    job = run_job(host, "quick")
    planted = host.call("eve-files", "/planted", key=host.eve, method="GET").json()
    assert planted == {"mark_was_there": False, "fifo": True}, "the FIFO must be in place before the host writes"
    assert job["status"] == "succeeded", job
    assert stat.S_ISREG(mark.lstat().st_mode)

    attack(host, "/swap", name="venv/.chutes-env-ready", kind="fifo")  # swapped once the virtualenv is ready
    assert run_job(host, "quick")["status"] == "succeeded"
    assert stat.S_ISREG(mark.lstat().st_mode), "a FIFO is no ready mark: the virtualenv is made again"
