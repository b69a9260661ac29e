"""`chutes jobs run` runs one job here in the foreground; `chutes run` serves a chute's jobs at /_jobs/."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.cli.conftest import CHUTES, FIXTURES

REF = f"{FIXTURES / 'cli_jobs.py'}:chute"


def test_job_runs_with_its_hooks_and_leaves_its_outputs(chutes, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    result = chutes(
        "jobs", "run", REF, "table", "--json", '{"n": 4}', "--input", str(tmp_path / "notes.txt"),
        "--dir", str(tmp_path / "run"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout[result.stdout.index("{") :]) == {"rows": 4, "inputs": ["notes.txt"]}
    assert "startup hook ran" in result.stdout and "shutdown hook ran" in result.stdout
    assert (tmp_path / "run" / "outputs" / "table.csv").read_text() == "0,0\n1,3\n2,6\n3,9\n"
    assert "job table: succeeded" in result.stderr


def test_bad_input_is_refused_before_the_job_runs(chutes, tmp_path: Path) -> None:
    cases = [
        (("nope",), "chute 'myuser-cli-jobs' has no job 'nope'; its jobs: hurry, table, wait"),
        (("table", "--json", '{"n": "x"}'), "n: Input should be a valid integer"),
        (("table", "--json", "{"), "--json is not valid JSON"),
        (("table", "--json", "[1]"), "--json must be an object of the job's arguments"),
        (("hurry", "--input", str(tmp_path / "x")), "takes no uploads (upload=False)"),
    ]
    for args, message in cases:
        result = chutes("jobs", "run", REF, *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "startup hook ran" not in result.stdout
    assert not (tmp_path / "job-runs").exists()


def test_timeout_ends_the_job(chutes, tmp_path: Path) -> None:
    result = chutes("jobs", "run", REF, "hurry", "--dir", str(tmp_path / "run"))
    assert result.returncode == 124
    assert "job hurry: timed_out (timed out after 1 s)" in result.stderr
    assert "shutdown hook ran" in result.stdout


def test_ctrl_c_cancels_the_job_cleanly(cli_env, tmp_path: Path) -> None:
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [CHUTES, "jobs", "run", REF, "wait", "--dir", str(tmp_path / "run")],
            env=cli_env,
            stdout=stdout,
            stderr=stderr,
        )
    deadline = time.monotonic() + 30
    while "waiting" not in out.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    assert "shutdown hook ran" in out.read_text()
    assert "job wait: cancelled (stopped by SIGINT)" in err.read_text()
    assert "Traceback" not in err.read_text()
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "cancelled"


def test_chutes_run_serves_the_jobs(start_server, tmp_path: Path) -> None:
    server = start_server(REF, cwd=tmp_path)
    assert f"{server.url}/_jobs/table" in server.stdout
    started = httpx.post(f"{server.url}/_jobs/table", json={"n": 2})
    assert started.status_code == 202, started.text
    run = started.json()
    deadline = time.monotonic() + 30
    while run["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
        run = httpx.get(f"{server.url}/_jobs/{run['id']}").json()
    assert run["status"] == "succeeded" and run["outputs"] == ["table.csv"]
    assert run["result"] == {"rows": 2, "inputs": []}  # the server's startup hook set the factor
    csv = httpx.get(f"{server.url}/_jobs/{run['id']}/outputs/table.csv")
    assert csv.text == "0,0\n1,3\n"
    assert Path(run["output_dir"]).parent.parent == tmp_path / "job-runs"
    invalid = httpx.post(f"{server.url}/_jobs/table", json={"n": "x"})
    assert invalid.status_code == 422 and "n: Input should be a valid integer" in invalid.json()["detail"]
    assert httpx.post(f"{server.url}/_jobs/nope", json={}).status_code == 404
    waiting = httpx.post(f"{server.url}/_jobs/wait", json={"seconds": 30}).json()
    cancelled = httpx.delete(f"{server.url}/_jobs/{waiting['id']}").json()
    assert cancelled["status"] == "cancelled"


def test_a_bad_job_fails_at_import_naming_its_line(chutes, tmp_path: Path) -> None:
    (tmp_path / "bad_job.py").write_text(
        "from chutes.chute import Chute\n\n"
        'chute = Chute(username="me", name="bad", image="x")\n\n\n'
        "@chute.job(timeout=0)\n"
        "async def train(self) -> None: ...\n"
    )
    for command in (("run", "bad_job:chute"), ("jobs", "run", "bad_job:chute", "train")):
        result = chutes(*command, cwd=tmp_path)
        assert result.returncode == 1, command
        assert "JobDefinitionError: job 'train' (bad_job.py:6): timeout must be a whole number" in result.stderr
