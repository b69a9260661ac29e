"""Jobs on a real host (process executor, sandboxed): start, status, logs, outputs, failure, timeout,
cancel, ports through the gateway, a host restart mid-job, and bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.host.conftest import Host, make_project, wait_for

FINISHED = ("succeeded", "failed", "cancelled", "timed_out", "lost")


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("jobs")
    host = Host(data_dir=base / "data", home=base / "home", port=free_port(), extra_args=["--health-interval", "0.3"])
    host.home.mkdir()
    host.start()
    host.alice = host.add_user("alice")
    host.bob = host.add_user("bob")
    host.project = make_project(base / "project", "host_jobs.py")
    deployed = host.cli("deploy", "host_jobs:chute", key=host.alice, cwd=host.project)
    assert deployed.returncode == 0, deployed.stderr
    yield host
    host.stop()


def start(host: Host, name: str, args: dict | None = None, *, key: str | None = None, **kwargs) -> httpx.Response:
    return host.api("POST", f"/chutes/jobs/jobs/{name}", key=key or host.alice, json=args or {}, **kwargs)


def job_of(host: Host, job_id: str, key: str | None = None) -> dict:
    resp = host.api("GET", f"/jobs/{job_id}", key=key or host.alice)
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_status(host: Host, job_id: str, wanted: tuple[str, ...] = FINISHED, timeout: float = 60) -> dict:
    return wait_for(
        lambda: (lambda j: j if j["status"] in wanted else None)(job_of(host, job_id)),
        timeout=timeout,
        what=f"job {job_id[:10]} to be {'/'.join(wanted)}",
        host=host,
    )


def job_dirs(host: Host) -> list[str]:
    jobs = host.data_dir / "jobs"
    return sorted(p.name for p in jobs.iterdir()) if jobs.exists() else []


def logs_of(host: Host, job_id: str) -> str:
    return host.api("GET", f"/jobs/{job_id}/logs", key=host.alice).text


def test_job_succeeds_and_its_output_is_downloaded(host: Host, tmp_path: Path) -> None:
    (tmp_path / "offset.txt").write_text("10")
    started = host.cli(
        "jobs", "start", "jobs", "squares", "--json", '{"n": 5}', "--input", str(tmp_path / "offset.txt"), "--follow",
        key=host.alice,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    job_id = started.stdout.splitlines()[0]
    assert "wrote 5 rows" in started.stdout  # the live log
    job = job_of(host, job_id)
    assert job["status"] == "succeeded", job
    assert job["result"]["rows"] == 5
    assert job["outputs"] == [{"path": "squares.csv", "size": job["output_bytes"]}]
    downloaded = host.cli("jobs", "download", job_id[:8], "--to", str(tmp_path / "out"), key=host.alice)
    assert downloaded.returncode == 0, downloaded.stderr
    expected = "n,square\n" + "".join(f"{i},{i * i}\n" for i in range(10, 15))
    assert (tmp_path / "out" / "squares.csv").read_text() == expected
    listed = host.cli("jobs", "list", "jobs", key=host.alice)
    assert job_id[:10] in listed.stdout and "succeeded" in listed.stdout


def test_failed_job_keeps_its_logs_and_partial_outputs(host: Host) -> None:
    followed = host.cli("jobs", "start", "jobs", "breaks", "--follow", key=host.alice)
    assert followed.returncode == 1
    assert "job " in followed.stderr and " failed (RuntimeError: the job broke on purpose)" in followed.stderr
    job = wait_status(host, followed.stdout.splitlines()[0])
    assert job["status"] == "failed"
    assert job["reason"] == "RuntimeError: the job broke on purpose"
    assert [o["path"] for o in job["outputs"]] == ["partial.txt"]
    assert "about to fail" in logs_of(host, job["id"]) and "Traceback" in logs_of(host, job["id"])
    got = host.api("GET", f"/jobs/{job['id']}/outputs/partial.txt", key=host.alice)
    assert got.status_code == 200 and got.content == b"half done\n"
    followed = host.cli("jobs", "logs", job["id"], key=host.alice)
    assert "the job broke on purpose" in followed.stdout


def test_timeout_is_enforced_and_reported(host: Host) -> None:
    resp = start(host, "sleepy", {"seconds": 600})
    job = wait_status(host, resp.json()["id"], timeout=90)
    assert job["status"] == "timed_out", job
    assert job["reason"] == "ran past its timeout of 3 s"
    assert [o["path"] for o in job["outputs"]] == ["started.txt"]
    assert "timed out after 3 s: stopping the job" in logs_of(host, job["id"])


def test_cancel_stops_a_running_job(host: Host) -> None:
    job_id = start(host, "napper").json()["id"]
    wait_status(host, job_id, ("running",))
    wait_for(lambda: "napping" in logs_of(host, job_id), timeout=30, what="the job to start napping", host=host)
    cancelled = host.cli("jobs", "cancel", job_id[:10], key=host.alice)
    assert cancelled.returncode == 0, cancelled.stderr
    job = job_of(host, job_id)
    assert job["status"] == "cancelled" and job["reason"] == "cancelled by its owner"
    assert "cancelled by SIGTERM" in logs_of(host, job_id)  # it got SIGTERM first, and its shutdown ran
    again = host.cli("jobs", "cancel", job_id[:10], key=host.alice)
    assert again.returncode == 1 and "already ended (cancelled)" in again.stderr
    deleted = host.cli("jobs", "delete", job_id[:10], key=host.alice)
    assert deleted.returncode == 0, deleted.stderr
    assert host.api("GET", f"/jobs/{job_id}", key=host.alice).status_code == 404
    assert not (host.data_dir / "jobs" / job_id).exists()


def test_job_port_is_reached_through_the_gateway_by_its_owner_only(host: Host) -> None:
    job_id = start(host, "web").json()["id"]
    job = wait_status(host, job_id, ("running",))
    name = f"alice-jobs-job-{job_id[:10]}"
    assert job["url"] == f"http://{name}.localhost:{host.port}"
    wait_for(lambda: "serving on 8089" in logs_of(host, job_id), timeout=30, what="the job's server", host=host)
    answer = host.call(name, "/frames/1", key=host.alice, method="GET")
    assert answer.status_code == 200, answer.text
    assert answer.text == f"job {job_id} answers /frames/1"
    by_name = host.call(name, "/a", key=host.alice, method="GET", headers={"X-Chutes-Job-Port": "web"})
    assert by_name.text == f"job {job_id} answers /a"
    other = host.call(name, "/a", key=host.alice, method="GET", headers={"X-Chutes-Job-Port": "9000"})
    assert other.status_code == 400 and other.json()["detail"] == "the job has no port '9000'; its ports: web (8089)"
    assert host.call(name, "/", key=host.bob, method="GET").status_code == 404
    assert host.call(name, "/", method="GET").status_code == 401
    assert host.api("DELETE", f"/chutes/jobs/jobs/{job_id}", key=host.alice).json()["status"] == "cancelled"
    assert host.call(name, "/", key=host.alice, method="GET").status_code == 404  # gone with the job


def test_job_runs_sandboxed_like_an_instance(host: Host) -> None:
    paths = [str(host.data_dir / "host.db"), str(host.data_dir / "chutes" / "alice-jobs" / "x")]
    job = wait_status(host, start(host, "probe", {"paths": paths}).json()["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["uid"] != 0
    assert "writable" not in job["result"]["seen"].values(), job["result"]  # the host's files are out of reach
    sibling = str(host.data_dir / "jobs" / job["id"] / "work" / "outputs" / "x")
    other = wait_status(host, start(host, "probe", {"paths": [sibling]}).json()["id"])
    assert other["result"]["seen"] == {sibling: "FileNotFoundError"}  # so is another run's directory


def test_bad_requests_are_refused_clearly(host: Host) -> None:
    before = host.api("GET", "/jobs", key=host.alice).json()
    dirs = job_dirs(host)
    unknown = start(host, "nope")
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == (
        "chute 'alice-jobs' has no job 'nope'; its jobs: breaks, napper, probe, sleepy, squares, web"
    )
    bad_json = host.api("POST", "/chutes/jobs/jobs/squares", key=host.alice, content=b"{not json")
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["detail"]
    extra = start(host, "squares", {"n": 1, "m": 2})
    assert extra.status_code == 422
    assert extra.json()["detail"] == "job 'squares': unknown argument(s) m (it takes: n)"
    missing = start(host, "squares", {})
    assert missing.json()["detail"] == "job 'squares': missing argument(s) n (it takes: n)"
    no_uploads = host.api(
        "POST", "/chutes/jobs/jobs/breaks", key=host.alice, data={"args": "{}"}, files={"f": ("a.txt", b"x")}
    )
    assert no_uploads.status_code == 422 and "takes no uploads" in no_uploads.json()["detail"]
    bad_name = host.api(
        "POST", "/chutes/jobs/jobs/squares", key=host.alice, data={"args": '{"n": 1}'}, files={"f": (".env", b"x")}
    )
    assert bad_name.status_code == 422 and "is not allowed" in bad_name.json()["detail"]
    assert host.api("GET", "/jobs/0123456789", key=host.alice).status_code == 404
    # arguments of the wrong type are checked against the job's schema (from the manifest), as a cord's are
    wrong = start(host, "squares", {"n": "many"})
    assert wrong.status_code == 422
    assert wrong.json()["detail"] == [
        {"type": "type", "loc": ["body", "n"], "msg": "'many' is not of type 'integer'", "input": "many"}
    ]
    nested = start(host, "probe", {"paths": ["a", 2]})
    assert nested.status_code == 422
    assert [(e["loc"], e["msg"]) for e in nested.json()["detail"]] == [
        (["body", "paths", 1], "2 is not of type 'string'")
    ]
    uploaded = host.api(
        "POST", "/chutes/jobs/jobs/squares", key=host.alice, data={"args": '{"n": 1.5}'}, files={"f": ("a.txt", b"x")}
    )
    assert uploaded.status_code == 422 and uploaded.json()["detail"][0]["msg"] == "1.5 is not of type 'integer'"
    cli = host.cli("jobs", "start", "jobs", "squares", "--json", '{"n": "many"}', key=host.alice)
    assert cli.returncode == 1
    assert cli.stderr.strip() == "Error: the host answered 422: n: 'many' is not of type 'integer'"
    # nothing of a refused request is left: no record, no directory
    assert host.api("GET", "/jobs", key=host.alice).json() == before
    assert job_dirs(host) == dirs
    cli = host.cli("jobs", "start", "jobs", "nope", key=host.alice)
    assert cli.returncode == 1 and "has no job 'nope'" in cli.stderr


def test_another_users_job_is_unknown_to_them(host: Host) -> None:
    job_id = start(host, "squares", {"n": 1}).json()["id"]
    wait_status(host, job_id)
    for method, path in (("GET", f"/jobs/{job_id}"), ("DELETE", f"/jobs/{job_id}"), ("GET", f"/jobs/{job_id}/logs")):
        resp = host.api(method, path, key=host.bob)
        assert resp.status_code == 404, (method, path, resp.text)
    assert host.api("GET", f"/jobs/{job_id}/outputs/squares.csv", key=host.bob).status_code == 404
    assert start(host, "squares", {"n": 1}, key=host.bob).status_code == 404  # not bob's chute
    assert job_id not in json.dumps(host.api("GET", "/jobs", key=host.bob).json())
    cli = host.cli("jobs", "get", job_id, key=host.bob)
    assert cli.returncode == 1 and f"no job '{job_id}'" in cli.stderr


def test_output_quota_refuses_new_jobs_with_a_clear_message(host_factory, tmp_path: Path) -> None:
    small = host_factory("--job-quota-mb", "1", "--max-bundle-mb", "1")
    key = small.add_user("alice")
    project = make_project(tmp_path / "project", "host_jobs.py")
    assert small.cli("deploy", "host_jobs:chute", key=key, cwd=project).returncode == 0
    (tmp_path / "big.bin").write_bytes(b"x" * (2 << 20))
    big = str(tmp_path / "big.bin")
    too_big = small.cli("jobs", "start", "jobs", "squares", "--json", '{"n": 1}', "-i", big, key=key)
    assert too_big.returncode == 1 and "413" in too_big.stderr and "larger than 1 MiB" in too_big.stderr
    assert small.api("GET", "/jobs", key=key).json() == []
    assert not (small.data_dir / "jobs").exists() or not list((small.data_dir / "jobs").iterdir())
    first = small.api("POST", "/chutes/jobs/jobs/squares", key=key, json={"n": 80_000})
    job = wait_status_on(small, key, first.json()["id"])
    assert job["status"] == "succeeded" and job["output_bytes"] > 2**20
    refused = small.api("POST", "/chutes/jobs/jobs/squares", key=key, json={"n": 1})
    assert refused.status_code == 507
    assert refused.json()["detail"].startswith("your jobs keep 1.")
    assert "quota per user is 1 MiB" in refused.json()["detail"]
    assert small.api("DELETE", f"/jobs/{job['id']}", key=key).json() == {"deleted": job["id"]}
    assert small.api("POST", "/chutes/jobs/jobs/squares", key=key, json={"n": 1}).status_code == 202
    # deleting the chute stops its running job, which keeps its record and log
    napping = small.api("POST", "/chutes/jobs/jobs/napper", key=key, json={}).json()["id"]
    wait_status_on(small, key, napping, ("running",))
    assert small.cli("chutes", "delete", "jobs", "--yes", key=key).returncode == 0
    job = wait_status_on(small, key, napping)
    assert (job["status"], job["reason"]) == ("cancelled", "its chute was deleted while it ran")
    assert "its chute was deleted: stopping the job" in small.api("GET", f"/jobs/{napping}/logs", key=key).text


def wait_status_on(host: Host, key: str, job_id: str, wanted: tuple[str, ...] = FINISHED) -> dict:
    def check() -> dict | None:
        job = host.api("GET", f"/jobs/{job_id}", key=key).json()
        return job if job["status"] in wanted else None

    return wait_for(check, timeout=60, what=f"job {job_id[:10]} to be {'/'.join(wanted)}", host=host)


def test_host_restart_reports_a_running_job_lost_and_queues_a_queued_one_again(host_factory, tmp_path: Path) -> None:
    host = host_factory("--gpus", "NVIDIA L4:24", "--health-interval", "0.3")
    key = host.add_user("alice")
    project = make_project(tmp_path / "project", "host_jobs.py", "host_gpu_jobs.py")
    for ref in ("host_jobs:chute", "host_gpu_jobs:chute"):
        deployed = host.cli("deploy", ref, key=key, cwd=project)
        assert deployed.returncode == 0, deployed.stderr
    napping = host.api("POST", "/chutes/jobs/jobs/napper", key=key, json={}).json()["id"]
    wait_status_on(host, key, napping, ("running",))
    # the GPU chute's own instance holds the only GPU: its job waits, saying for what
    waiting = host.api("POST", "/chutes/gpujobs/jobs/devices", key=key, json={}).json()["id"]
    job = wait_status_on(host, key, waiting, ("queued",))
    wait_for(
        lambda: "alice/gpujobs" in (host.api("GET", f"/jobs/{waiting}", key=key).json()["reason"] or ""),
        timeout=30,
        what="the queued job to say who holds the GPU",
        host=host,
    )
    host.stop()
    host.start()
    lost = host.api("GET", f"/jobs/{napping}", key=key).json()
    assert lost["status"] == "lost"
    assert lost["reason"].startswith("the host stopped while the job ran")
    assert "napping" in host.api("GET", f"/jobs/{napping}/logs", key=key).text
    job = host.api("GET", f"/jobs/{waiting}", key=key).json()
    assert job["status"] == "queued"  # it never started: queued again, not lost
    assert "queued again after the host restarted" in host.log_text()


def test_job_queues_while_the_gpus_are_held_and_starts_when_they_free(host_factory, tmp_path: Path) -> None:
    host = host_factory("--gpus", "2xNVIDIA L4:24", "--health-interval", "0.3")
    key = host.add_user("alice")
    project = make_project(tmp_path / "project", "host_gpu_jobs.py")
    deployed = host.cli("deploy", "host_gpu_jobs:chute", key=key, cwd=project)
    assert deployed.returncode == 0, deployed.stderr
    first = host.api("POST", "/chutes/gpujobs/jobs/devices", key=key, json={"seconds": 600}).json()["id"]
    holding = wait_status_on(host, key, first, ("running",))
    (gpu,) = holding["gpus"]
    second = host.api("POST", "/chutes/gpujobs/jobs/devices", key=key, json={}).json()["id"]
    wait_for(
        lambda: f"job {first[:10]}" in (host.api("GET", f"/jobs/{second}", key=key).json()["reason"] or ""),
        timeout=30,
        what="the second job to wait for the first one's GPU",
        host=host,
    )
    assert host.api("GET", f"/jobs/{second}", key=key).json()["status"] == "queued"
    assert host.api("DELETE", f"/jobs/{first}", key=key).json()["status"] == "cancelled"
    done = wait_status_on(host, key, second)
    assert done["status"] == "succeeded", done
    assert done["result"] == {"cuda": str(gpu["index"])}
    assert done["gpus"] == holding["gpus"]


def test_a_redeploy_keeps_a_running_jobs_files_until_it_ends(host_factory, tmp_path: Path) -> None:
    host = host_factory("--health-interval", "0.3")
    key = host.add_user("alice")
    project = make_project(tmp_path / "project", "host_late_jobs.py", "host_late_module.py", "host_late_data.txt")
    assert host.cli("deploy", "host_late_jobs:chute", key=key, cwd=project).returncode == 0
    versions = host.data_dir / "chutes" / "alice-latejobs"
    job_id = host.api("POST", "/chutes/latejobs/jobs/late_import", key=key, json={}).json()["id"]
    wait_status_on(host, key, job_id, ("running",))
    wait_for(
        lambda: "waiting for go" in host.api("GET", f"/jobs/{job_id}/logs", key=key).text,
        timeout=30,
        what="the job to wait",
        host=host,
    )
    redeployed = host.cli("deploy", "host_late_jobs:chute", key=key, cwd=project)
    assert redeployed.returncode == 0, redeployed.stderr
    wait_for(  # the new version is ready and has replaced version 1 (whose files would go at this point)
        lambda: "version 1 is replaced" in host.log_text() or not (versions / "1").exists(),
        timeout=60,
        what="version 1 to be retired",
        host=host,
    )
    (host.data_dir / "jobs" / job_id / "work" / "inputs" / "go").touch()  # now the job imports from its app
    job = wait_status_on(host, key, job_id)
    assert job["status"] == "succeeded", (job, host.api("GET", f"/jobs/{job_id}/logs", key=key).text)
    assert job["result"] == {"value": "imported late", "data": "read late"}
    wait_for(lambda: not (versions / "1").exists(), timeout=30, what="version 1's files to go", host=host)
    assert (versions / "2" / "app" / "host_late_module.py").is_file()
    assert "version 1 is replaced, but 1 job(s) started on it still run; its files stay" in host.log_text()
    assert "the last job on version 1 ended; removing its files" in host.log_text()


def test_a_chute_deployed_without_argument_schemas_still_checks_names_and_leaves_types_to_the_job(
    host_factory,
    tmp_path: Path,
) -> None:
    from tests.fixtures.chutes.host_jobs import chute
    from tests.host.bundles import file_member, make_tar

    host = host_factory("--health-interval", "0.3")
    key = host.add_user("alice")
    manifest = dict(chute.manifest(), entrypoint="host_jobs:chute")
    for job in manifest["jobs"]:  # as an older CLI wrote it
        del job["args_schema"]
    source = (Path(__file__).parents[1] / "fixtures" / "chutes" / "host_jobs.py").read_bytes()
    bundle = make_tar(
        tmp_path / "old.tgz",
        [file_member("manifest.json", json.dumps(manifest).encode()), file_member("app/host_jobs.py", source)],
    )
    deployed = host.api("POST", "/chutes", key=key, content=bundle, headers={"Content-Type": "application/gzip"})
    assert deployed.status_code in (200, 201, 202), deployed.text
    extra = host.api("POST", "/chutes/jobs/jobs/squares", key=key, json={"n": 1, "m": 2})
    assert extra.status_code == 422 and extra.json()["detail"] == "job 'squares': unknown argument(s) m (it takes: n)"
    wrong = host.api("POST", "/chutes/jobs/jobs/squares", key=key, json={"n": "many"})
    assert wrong.status_code == 202, wrong.text
    job = wait_status_on(host, key, wrong.json()["id"])
    assert job["status"] == "failed" and job["exit_code"] == 2
    assert job["reason"].startswith("the arguments of job 'squares' (host_jobs.py:")
    assert "n: Input should be a valid integer" in job["reason"]
