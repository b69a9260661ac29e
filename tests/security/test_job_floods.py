"""A tenant (eve) tries to stall or exhaust the host through jobs: a huge JSON start body, a flood of
output files, a flood of stdout while someone follows the log. The host refuses or bounds each, and keeps
answering everyone within a second (a real host, sandboxed, as root where the machine allows)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.host.conftest import Host
from tests.security.conftest import ANSWER_WITHIN, quick, start_hostile_host

FINISHED = ("succeeded", "failed", "cancelled", "timed_out", "lost")
MAX_OUTPUTS = 10_000  # the host's default cap on files and directories in a job's output_dir


@pytest.fixture(scope="module")
def host(tmp_path_factory, sandbox_available) -> Iterator[Host]:
    host = start_hostile_host(tmp_path_factory.mktemp("job-floods"), "hostile_jobs.py")
    yield host
    host.stop()


class Bystander:
    """Calls an unrelated route and a chute's /ping over and over in a thread, recording the slowest answer."""

    def __init__(self, host: Host) -> None:
        self.host, self.slowest, self.errors = host, 0.0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                assert httpx.get(f"{self.host.url}/api/v1/openapi.json", timeout=5).status_code == 200
                pong = self.host.call("eve-jobflood", "/ping", key=self.host.eve, timeout=5)
                assert pong.status_code == 200, pong.text
            except (httpx.HTTPError, AssertionError) as exc:
                self.errors.append(repr(exc))
            self.slowest = max(self.slowest, time.monotonic() - began)
            time.sleep(0.02)

    def __enter__(self) -> Bystander:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.errors, self.errors
        assert self.slowest < ANSWER_WITHIN, f"an unrelated request took {self.slowest:.2f} s during the attack"


def run_job(host: Host, name: str, args: dict, *, timeout: float = 60) -> dict:
    started = quick(host, "POST", f"/chutes/jobflood/jobs/{name}", json=args)
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = quick(host, "GET", f"/jobs/{started.json()['id']}").json()
        if job["status"] in FINISHED:
            return job
        time.sleep(0.2)
    pytest.fail(f"job {name} did not end within {timeout} s: {job}\n{host.log_text()[-3000:]}")


def host_peak_rss(host: Host) -> int:
    """Returns the host process's peak resident memory so far, in bytes."""
    with open(f"/proc/{host.proc.pid}/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_a_huge_json_start_body_is_refused_as_it_arrives_not_parsed(host: Host) -> None:
    body = b'{"a":[' + b"1," * (15 * 2**20) + b"1]}"  # 30 MiB, well under the 200 MiB upload budget
    headers = {"X-API-Key": host.eve, "Content-Type": "application/json"}
    url = f"{host.url}/api/v1/chutes/jobflood/jobs/takes"

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 2**20):
            yield body[start : start + 2**20]

    with Bystander(host):
        for content in (body, chunks()):  # with a Content-Length, and streamed without one
            try:
                resp = httpx.post(url, content=content, headers=headers, timeout=10)
            except httpx.WriteError:  # the host answered 413 and closed before the body was all sent
                continue
            assert resp.status_code == 413, resp.text[:500]
            detail = resp.json()["detail"]
            assert "JSON arguments are larger than 1 MiB" in detail and "as files" in detail, detail
    near = b'{"a":[' + b"1," * 400_000 + b"1]}"  # 0.8 MiB: under the cap, read and checked as before
    resp = httpx.post(url, content=near, headers=headers, timeout=10)
    assert resp.status_code == 422 and "unknown argument(s) a" in resp.text, resp.text[:500]
    assert not any((host.data_dir / "jobs").glob("*"))  # the refused starts left nothing behind


def test_a_job_leaving_too_many_output_files_fails_and_its_listing_stays_small(host: Host) -> None:
    with Bystander(host):
        job = run_job(host, "many_outputs", {"files": MAX_OUTPUTS + 2000})
    assert job["status"] == "failed", job
    assert f"more than {MAX_OUTPUTS} files and directories in its output_dir" in job["reason"], job
    assert job["outputs"] == [] and job["output_bytes"] == 0
    assert not (host.data_dir / "jobs" / job["id"] / "work" / "outputs").exists()
    answer = quick(host, "GET", f"/jobs/{job['id']}")
    assert len(answer.content) < 10_000, len(answer.content)


def test_outputs_are_listed_in_pages(host: Host) -> None:
    job = run_job(host, "many_outputs", {"files": 2500, "per_dir": 1000})
    assert job["status"] == "succeeded", job
    assert len(job["outputs"]) == 1000 and job["outputs_next"] == 1000  # the default page
    seen, offset = [], 0
    while offset is not None:
        page = quick(host, "GET", f"/jobs/{job['id']}", params={"offset": offset, "limit": 700}).json()
        assert len(page["outputs"]) <= 700
        seen += [o["path"] for o in page["outputs"]]
        offset = page["outputs_next"]
    assert len(seen) == 2500 and seen == sorted(set(seen)) and seen[0] == "d00000/f0000000"
    too_many = quick(host, "GET", f"/jobs/{job['id']}", params={"limit": 10_001})
    assert too_many.status_code == 422, too_many.text


def test_following_a_flood_of_stdout_reads_it_in_bounded_chunks(host: Host) -> None:
    started = quick(host, "POST", "/chutes/jobflood/jobs/loud", json={"mib": 300, "then_sleep": 3})
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    before = host_peak_rss(host)
    got = 0
    with Bystander(host):
        params = {"follow": "true", "tail": 0}
        headers = {"X-API-Key": host.eve}
        with httpx.stream(
            "GET", f"{host.url}/api/v1/jobs/{job_id}/logs", params=params, headers=headers, timeout=60
        ) as resp:
            assert resp.status_code == 200
            for chunk in resp.iter_raw():
                got += len(chunk)
                time.sleep(0.0005)  # a reader a little slower than the job writes
    assert got >= 300 * 2**20, got
    grown = host_peak_rss(host) - before
    assert grown < 100 * 2**20, f"the host's peak memory grew by {grown / 2**20:.0f} MiB following the log"
