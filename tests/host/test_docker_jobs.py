"""Jobs on the docker executor: each run is a container of the chute's image with its directory bound
at /job. Needs DOCKER_HOST (see .ci/engine.sh); skips without an engine unless CI is set."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.host.conftest import FIXTURES, Host, docker_host, wait_for
from tests.host.test_jobs import FINISHED

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def host(engine, tmp_path_factory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("docker-jobs")
    host = docker_host(base)
    host.alice = host.add_user("alice")
    host.bob = host.add_user("bob")
    # the process executor's job chute, built into an image of its own
    project = base / "project"
    project.mkdir()
    source = (FIXTURES / "host_jobs.py").read_text()
    chute_line = 'chute = Chute(username="alice", name="jobs", image="tests/host-jobs", '
    assert chute_line in source
    source = source.replace(
        chute_line, 'chute = Chute(username="alice", name="jobs", image=Image("alice", "jobs", "0.1"), '
    )
    imports = "from chutes.chute import Chute, NodeSelector, Port\n"
    source = source.replace(imports, imports + "from chutes.image import Image\n")
    (project / "docker_jobs.py").write_text(source)
    deployed = host.cli("deploy", "docker_jobs:chute", key=host.alice, cwd=project, timeout=600)
    assert deployed.returncode == 0, deployed.stderr + host.log_text()
    yield host
    host.stop()


def start(host: Host, name: str, args: dict | None = None) -> str:
    resp = host.api("POST", f"/chutes/jobs/jobs/{name}", key=host.alice, json=args or {})
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def wait_status(host: Host, job_id: str, wanted: tuple[str, ...] = FINISHED) -> dict:
    def check() -> dict | None:
        job = host.api("GET", f"/jobs/{job_id}", key=host.alice).json()
        return job if job["status"] in wanted else None

    return wait_for(check, timeout=120, what=f"job {job_id[:10]} to be {'/'.join(wanted)}", host=host)


def logs_of(host: Host, job_id: str) -> str:
    return host.api("GET", f"/jobs/{job_id}/logs", key=host.alice).text


def job_containers(engine, host: Host, job_id: str) -> list:
    owner = hashlib.sha256(str(host.data_dir.resolve()).encode()).hexdigest()[:16]
    return engine.containers.list(all=True, filters={"label": [f"ai.chutes.job={job_id}", f"ai.chutes.host={owner}"]})


def test_job_runs_in_a_container_and_its_output_is_downloaded(host: Host, engine, tmp_path: Path) -> None:
    (tmp_path / "offset.txt").write_text("3")
    started = host.cli(
        "jobs", "start", "jobs", "squares", "--json", '{"n": 4}', "--input", str(tmp_path / "offset.txt"), "--follow",
        key=host.alice, timeout=180,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr + host.log_text()
    job_id = started.stdout.splitlines()[0]
    assert "wrote 4 rows" in started.stdout
    downloaded = host.cli("jobs", "download", job_id, "--to", str(tmp_path / "out"), key=host.alice)
    assert downloaded.returncode == 0, downloaded.stderr
    assert (tmp_path / "out" / "squares.csv").read_text() == "n,square\n3,9\n4,16\n5,25\n6,36\n"
    assert job_containers(engine, host, job_id) == []  # removed once it ended


def test_failure_timeout_and_cancel_in_containers(host: Host, engine) -> None:
    broken = wait_status(host, start(host, "breaks"))
    assert broken["status"] == "failed" and broken["reason"] == "RuntimeError: the job broke on purpose"
    assert [o["path"] for o in broken["outputs"]] == ["partial.txt"]
    assert "Traceback" in logs_of(host, broken["id"])
    slow = wait_status(host, start(host, "sleepy", {"seconds": 600}))
    assert slow["status"] == "timed_out" and [o["path"] for o in slow["outputs"]] == ["started.txt"]
    napping = start(host, "napper")
    wait_for(lambda: "napping" in logs_of(host, napping), timeout=60, what="the job to nap", host=host)
    (container,) = job_containers(engine, host, napping)
    assert container.attrs["HostConfig"]["CapDrop"] == ["ALL"]  # confined like an instance
    assert host.api("DELETE", f"/jobs/{napping}", key=host.alice).json()["status"] == "cancelled"
    assert "cancelled by SIGTERM" in logs_of(host, napping)
    assert job_containers(engine, host, napping) == []


def test_job_port_through_the_gateway(host: Host) -> None:
    job_id = start(host, "web")
    wait_for(lambda: "serving on 8089" in logs_of(host, job_id), timeout=60, what="the job's server", host=host)
    name = f"alice-jobs-job-{job_id[:10]}"
    answer = host.call(name, "/x", key=host.alice, method="GET")
    assert answer.status_code == 200 and answer.text == f"job {job_id} answers /x"
    assert host.call(name, "/x", key=host.bob, method="GET").status_code == 404
    host.api("DELETE", f"/jobs/{job_id}", key=host.alice)


def test_restart_mid_job_reports_it_lost(host: Host, engine) -> None:
    job_id = start(host, "napper")
    wait_status(host, job_id, ("running",))
    host.stop()
    host.start()
    job = host.api("GET", f"/jobs/{job_id}", key=host.alice).json()
    assert job["status"] == "lost" and job["reason"].startswith("the host stopped while the job ran")
    assert job_containers(engine, host, job_id) == []
