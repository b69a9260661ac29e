"""End to end through the real commands: host serve, users add, deploy, and calls through the gateway."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.host.conftest import Host, make_project, run_cli, wait_for
from tests.wheels import write_wheel


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("e2e")
    host = Host(
        data_dir=base / "data",
        home=base / "home",
        port=free_port(),
        extra_args=["--health-interval", "0.3"],
        env={"HOST_DB_PASSWORD": "secret"},
    )
    host.home.mkdir()
    host.start()
    host.alice = host.add_user("alice")
    host.bob = host.add_user("bob")
    host.project = make_project(base / "project", "host_hello.py", "host_open.py", "host_broken.py")
    deployed = host.cli("deploy", "host_hello:chute", key=host.alice, cwd=host.project)
    assert deployed.returncode == 0, deployed.stderr
    host.deploy_output = deployed
    yield host
    host.stop()


def test_deploy_prints_url_phases_and_example(host: Host) -> None:
    assert host.deploy_output.stdout.strip() == f"http://alice-hello.localhost:{host.port}"
    err = host.deploy_output.stderr
    assert err.index("packing") < err.index("uploading") < err.index("starting") < err.index("ready")
    assert "packing" in err and ": done in" in err  # plain progress lines, as stderr is not a terminal
    assert 'try: chutes invoke /hello --chute alice/hello --json \'{"name": "text"}\'' in err


def suggested_command(stderr: str) -> list[str]:
    """Returns the arguments of the `try: chutes invoke ...` line deploy printed."""
    line = next(line for line in stderr.splitlines() if line.strip().startswith("try: chutes invoke"))
    return shlex.split(line.strip().removeprefix("try: chutes "))


def test_suggested_invoke_works_for_a_post_cord(host: Host) -> None:
    result = host.cli(*suggested_command(host.deploy_output.stderr), key=host.alice)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"message": "Hello, text!"}


def test_suggested_invoke_names_the_host_given_to_deploy(host: Host) -> None:
    project = make_project(host.project.parent / "with-host", "host_open.py")
    deployed = run_cli(
        "deploy", "host_open:chute", "--host", host.url, home=host.home, cwd=project, CHUTES_API_KEY=host.alice
    )
    assert deployed.returncode == 0, deployed.stderr
    args = suggested_command(deployed.stderr)
    assert args[args.index("--host") + 1] == host.url
    result = run_cli(*args, home=host.home, CHUTES_API_KEY=host.alice)  # no api_url configured
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"message": "Hello, text!"}


def test_a_fresh_scaffold_deploys_and_its_suggested_call_works(host: Host) -> None:
    work = host.project.parent / "scaffolds"
    work.mkdir()
    assert run_cli("init", "fresh", "--username", "alice", home=host.home, cwd=work).returncode == 0
    deployed = host.cli("deploy", "fresh:chute", key=host.alice, cwd=work / "fresh")
    assert deployed.returncode == 0, deployed.stderr
    result = host.cli(*suggested_command(deployed.stderr), key=host.alice)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"message": "Hello, world!"}


def test_requirement_missing_here_is_stood_in_and_installed_on_the_host(host: Host) -> None:
    project = make_project(host.project.parent / "helper", "host_needs_helper.py")
    # the wheel travels in the bundle: pip runs sandboxed on the host and sees no host path
    wheels = project / "wheels"
    wheels.mkdir()
    write_wheel(wheels, "chutes-test-helper", "chutes_test_helper", "ANSWER = 42\n")
    (project / "requirements.txt").write_text("--no-index\n--find-links wheels\nchutes-test-helper==1.0\n")
    result = host.cli("deploy", "host_needs_helper:chute", key=host.alice, cwd=project)
    assert result.returncode == 0, result.stderr
    assert "stood in for chutes_test_helper" in result.stderr
    answer = host.call("alice-helper", "/answer", key=host.alice, json={"question": "?"})
    assert answer.json() == {"question": "?", "answer": 42}


def test_missing_module_not_in_requirements_fails_before_upload(host: Host) -> None:
    project = make_project(host.project.parent / "unlisted", "host_needs_helper.py")
    (project / "requirements.txt").write_text("rich\n")
    result = host.cli("deploy", "host_needs_helper:chute", key=host.alice, cwd=project)
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'chutes_test_helper'" in result.stderr
    assert "names its package" in result.stderr
    assert "uploading" not in result.stderr and "stood in" not in result.stderr


def test_json_cord_through_gateway(host: Host) -> None:
    resp = host.call("alice-hello", "/hello", key=host.alice, json={"name": "Ada"})
    assert resp.status_code == 200
    assert resp.json() == {"message": "Hello, Ada!"}


def test_invoke_through_gateway(host: Host) -> None:
    result = host.cli("invoke", "/hello", "--chute", "alice/hello", "--json", '{"name": "Bo"}', key=host.alice)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"message": "Hello, Bo!"}


def test_streaming_cord_arrives_as_produced(host: Host) -> None:
    headers = {"Host": f"alice-hello.localhost:{host.port}", "X-API-Key": host.alice}
    arrivals = []
    start = time.monotonic()
    with httpx.stream("POST", f"{host.url}/count", json={"to": 3, "delay": 0.4}, headers=headers, timeout=10) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic() - start, json.loads(line[6:])))
    assert [event for _, event in arrivals] == [{"n": 0}, {"n": 1}, {"n": 2}]
    # events produced 0.4 s apart reached the client apart, not together at the end
    assert arrivals[2][0] - arrivals[0][0] > 0.5
    assert arrivals[1][0] - arrivals[0][0] > 0.1


def test_instance_does_not_see_the_hosts_environment(host: Host) -> None:
    seen = host.call("alice-hello", "/whoami", key=host.alice, method="GET").json()
    assert seen["instance"] == "0"
    assert "HOST_DB_PASSWORD" not in seen["env"]
    assert "PATH" in seen["env"]


def test_chute_never_sees_its_callers_host_key(host: Host) -> None:
    sent = {"X-Trace": "t1", "X-API-Key": host.alice}
    seen = host.call("alice-hello", "/headers", method="GET", headers=sent).json()
    assert seen == {"authorization": None, "x_api_key": None, "x_trace": "t1", "x_forwarded_for": "127.0.0.1"}
    # the chute's own auth scheme passes through untouched
    sent = {"Authorization": "Bearer sk-chute-own-token", "X-API-Key": host.alice}
    seen = host.call("alice-hello", "/headers", method="GET", headers=sent).json()
    assert seen["authorization"] == "Bearer sk-chute-own-token"
    assert seen["x_api_key"] is None


def test_private_chute_refuses_missing_unknown_and_foreign_keys(host: Host) -> None:
    missing = host.call("alice-hello", "/hello", json={"name": "x"})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "private" in missing.json()["detail"]
    unknown = host.call("alice-hello", "/hello", key="cpk_00000000_nope", json={"name": "x"})
    assert unknown.status_code == 401
    foreign = host.call("alice-hello", "/hello", key=host.bob, json={"name": "x"})
    nowhere = host.call("alice-nothing", "/hello", key=host.bob, json={"name": "x"})
    # another user's private chute looks exactly like no chute: slugs do not leak
    assert (foreign.status_code, nowhere.status_code) == (404, 404)
    assert foreign.json()["detail"] == nowhere.json()["detail"].replace("alice-nothing", "alice-hello")


def test_public_chute_is_open(host: Host) -> None:
    result = host.cli("deploy", "host_open:chute", "--public", key=host.alice, cwd=host.project)
    assert result.returncode == 0, result.stderr
    resp = host.call("alice-open", "/hello", json={"name": "anyone"})
    assert resp.status_code == 200
    assert resp.json() == {"message": "Hello, anyone!"}


def test_control_api_is_described_in_openapi(host: Host) -> None:
    spec = httpx.get(f"{host.url}/api/v1/openapi.json").json()
    assert {
        "/api/v1/chutes",
        "/api/v1/chutes/{ref}",
        "/api/v1/chutes/{ref}/logs",
        "/api/v1/chutes/{ref}/scale",
        "/api/v1/keys",
        "/api/v1/me",
    } <= set(spec["paths"])
    upload = spec["paths"]["/api/v1/chutes"]["post"]["requestBody"]["content"]
    assert "application/gzip" in upload
    assert httpx.get(f"{host.url}/api/v1/docs").status_code == 200
    # the bare domain reaches the control API too
    me = httpx.get(f"{host.url}/api/v1/me", headers={"Host": f"localhost:{host.port}", "X-API-Key": host.bob})
    assert me.json() == {"name": "bob"}


def test_unknown_chute_is_404_json(host: Host) -> None:
    resp = host.call("alice-nothing", "/hello", json={})
    assert resp.status_code == 404
    assert "alice-nothing" in resp.json()["detail"]


def instance_pid(host: Host, index: int = 0) -> int:
    """Returns the host's pid of an instance of alice-hello, as the control API shows it."""
    return host.api("GET", "/chutes/hello", key=host.alice).json()["instances"][index]["pid"]


def test_killed_instance_is_restarted(host: Host) -> None:
    before = host.call("alice-hello", "/whoami", key=host.alice, method="GET").json()["boot"]
    os.kill(instance_pid(host), signal.SIGKILL)

    def new_pid() -> str | None:
        resp = host.call("alice-hello", "/whoami", key=host.alice, method="GET")
        # never a 502 while the instance restarts: 503 with Retry-After, from the gateway's routing or,
        # in the moment between the death and the supervisor noticing it, from its proxy
        assert resp.status_code in (200, 503), resp.text
        if resp.status_code == 503:
            assert resp.headers["retry-after"]
            assert resp.json().get("phase", "starting") == "starting"
        return resp.json()["boot"] if resp.status_code == 200 and resp.json()["boot"] != before else None

    wait_for(new_pid, timeout=20, what="the killed instance to be restarted", host=host)
    chute = host.api("GET", "/chutes/hello", key=host.alice).json()
    assert chute["instances"][0]["restarts"] == 1
    logs = host.cli("chutes", "logs", "hello", key=host.alice)
    assert "exit code -9" in logs.stdout


def test_frozen_instance_is_restarted(host: Host) -> None:
    before = host.call("alice-hello", "/whoami", key=host.alice, method="GET").json()["boot"]
    frozen = instance_pid(host)
    os.kill(frozen, signal.SIGSTOP)  # alive but no longer answering

    def new_pid() -> str | None:
        try:
            resp = host.call("alice-hello", "/whoami", key=host.alice, method="GET", timeout=1)
        except httpx.TimeoutException:  # the gateway waits on the frozen instance
            return None
        return resp.json()["boot"] if resp.status_code == 200 and resp.json()["boot"] != before else None

    try:
        wait_for(new_pid, timeout=30, what="the frozen instance to be replaced", host=host)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(frozen, signal.SIGCONT)
    logs = host.cli("chutes", "logs", "hello", key=host.alice)
    assert "instance 0 unhealthy" in logs.stdout


def test_scaled_chute_spreads_calls_over_its_instances(host: Host) -> None:
    headers = {"X-API-Key": host.alice}
    url = f"{host.url}/api/v1/chutes/hello/logs?follow=true&tail=5"
    with httpx.stream("GET", url, headers=headers, timeout=10) as follow:
        result = host.cli("chutes", "scale", "hello", "2", key=host.alice)
        assert result.returncode == 0, result.stderr
        seen = ""
        for chunk in follow.iter_text():  # a read timeout fails the test if the new log never shows up
            seen += chunk
            if "[instance-1] --- " in seen:
                break
    assert "[instance-0]" in seen

    def two_ready() -> bool:
        chute = host.api("GET", "/chutes/hello", key=host.alice).json()
        return [i["phase"] for i in chute["instances"]] == ["ready", "ready"]

    wait_for(two_ready, timeout=20, what="a second ready instance")
    pids = [host.call("alice-hello", "/whoami", key=host.alice, method="GET").json()["boot"] for _ in range(4)]
    assert len(set(pids)) == 2
    assert pids[0] == pids[2] and pids[1] == pids[3]
    assert host.api("GET", "/chutes/hello", key=host.alice).json()["max_instances"] == 2
    assert host.cli("chutes", "scale", "hello", "1", key=host.alice).returncode == 0
    chute = host.api("GET", "/chutes/hello", key=host.alice).json()
    assert [i["index"] for i in chute["instances"]] == [0]


def test_users_see_and_change_only_their_own_chutes(host: Host) -> None:
    assert host.api("GET", "/chutes", key=host.bob).json() == []
    assert host.api("GET", "/chutes/alice-hello", key=host.bob).status_code == 404
    assert host.api("DELETE", "/chutes/alice-hello", key=host.bob).status_code == 404
    refused = host.cli("deploy", "host_hello:chute", key=host.bob, cwd=host.project)
    assert refused.returncode == 1
    assert "belongs to user 'alice'" in refused.stderr
    assert host.call("alice-hello", "/hello", key=host.alice, json={"name": "still"}).status_code == 200


def test_failing_import_reports_phase_and_log_tail(host: Host) -> None:
    result = host.cli("deploy", "host_broken:chute", key=host.alice, cwd=host.project)
    assert result.returncode == 1
    assert "Error: the chute failed while starting" in result.stderr
    assert "not_installed_on_the_host" in result.stderr
    resp = host.call("alice-broken", "/never", key=host.alice, json={})
    assert resp.status_code == 503
    assert resp.json()["phase"] == "failed"
    shown = host.cli("chutes", "get", "broken", key=host.alice)
    assert "error (starting): instance 0 exited before it was ready" in shown.stdout
    assert "| ModuleNotFoundError: No module named 'not_installed_on_the_host'" in shown.stdout
    # the host keeps serving every other chute
    assert host.call("alice-hello", "/hello", key=host.alice, json={"name": "ok"}).status_code == 200


def requirements_project(host: Host, name: str, requirements: str) -> Path:
    project = host.project.parent / name
    project.mkdir()
    source = (host.project / "host_open.py").read_text().replace('name="open"', f'name="{name}"')
    (project / "host_open.py").write_text(source)
    (project / "requirements.txt").write_text(requirements)
    return project


def test_requirements_are_installed_into_the_chutes_own_virtualenv(host: Host) -> None:
    project = requirements_project(host, "reqs", "--no-index\nrich\n")  # offline: already satisfied via the host
    result = host.cli("deploy", "host_open:chute", key=host.alice, cwd=project)
    assert result.returncode == 0, result.stderr
    build_log = (host.data_dir / "chutes" / "alice-reqs" / "logs" / "build.log").read_text()
    assert "pip install --no-input -r" in build_log
    assert "Requirement already satisfied: rich" in build_log


def test_failing_requirements_report_the_building_phase(host: Host) -> None:
    project = requirements_project(host, "badreqs", "--no-index\nno-such-package-for-chutes-tests\n")
    result = host.cli("deploy", "host_open:chute", key=host.alice, cwd=project)
    assert result.returncode == 1
    assert "Error: the chute failed while building: installing requirements.txt failed" in result.stderr
    assert "no-such-package-for-chutes-tests" in result.stderr
    assert host.call("alice-badreqs", "/hello", key=host.alice, json={"name": "x"}).json()["phase"] == "failed"


def test_deleted_chute_is_gone(host: Host) -> None:
    deployed = host.cli("deploy", "host_broken:chute", key=host.alice, cwd=host.project)
    assert deployed.returncode == 1
    result = host.cli("chutes", "delete", "broken", "--yes", key=host.alice)
    assert result.returncode == 0, result.stderr
    resp = host.call("alice-broken", "/never", key=host.alice, json={})
    assert resp.status_code == 404
    assert not (host.data_dir / "chutes" / "alice-broken").exists()
    listed = host.cli("chutes", "list", key=host.alice)
    assert "broken" not in listed.stdout and "hello" in listed.stdout


def test_redeploy_replaces_the_version_without_downtime(host: Host) -> None:
    statuses: list[int] = []
    stop = threading.Event()

    def keep_calling() -> None:
        while not stop.is_set():
            statuses.append(host.call("alice-hello", "/hello", key=host.alice, json={"name": "x"}).status_code)
            time.sleep(0.02)

    caller = threading.Thread(target=keep_calling)
    caller.start()
    try:
        result = host.cli("deploy", "host_hello:chute", key=host.alice, cwd=host.project)
    finally:
        stop.set()
        caller.join(10)
    assert result.returncode == 0, result.stderr
    chute = host.api("GET", "/chutes/hello", key=host.alice).json()
    assert chute["version"] == 2
    assert len(statuses) > 10 and set(statuses) == {200}

    def only_version_2_on_disk() -> bool:  # the old version is removed once it has stopped
        return sorted(p.name for p in (host.data_dir / "chutes" / "alice-hello").iterdir()) == ["2", "logs"]

    wait_for(only_version_2_on_disk, timeout=15, what="version 1's files to be removed")


def test_restarted_host_serves_deployments_again(host: Host) -> None:
    host.stop()
    host.start()

    def served() -> bool:
        return host.call("alice-hello", "/hello", key=host.alice, json={"name": "again"}).status_code == 200

    wait_for(served, timeout=30, what="the deployment to come back after a host restart", host=host)
    assert host.call("alice-open", "/hello", json={"name": "again"}).json() == {"message": "Hello, again!"}
