"""One `chutes jobs` group: `run` (here) beside the host's verbs; `chutes job` is its hidden old name."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.conftest import FIXTURES

REF = f"{FIXTURES / 'cli_jobs.py'}:chute"
VERBS = ["run", "start", "get", "list", "logs", "cancel", "download", "delete"]
NOTE = "note: `chutes job` is now `chutes jobs` (same commands); use `chutes jobs` in scripts and docs"


def listed_commands(help_text: str) -> list[str]:
    """Returns the command names under `Commands:` in a click help page, in order."""
    section = help_text.split("Commands:", 1)[1]
    return re.findall(r"^  (\S+)", section, re.M)


def test_jobs_help_lists_run_with_the_host_verbs(chutes) -> None:
    result = chutes("jobs", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert listed_commands(result.stdout) == VERBS
    assert "Example: chutes jobs run" in chutes("jobs", "run", "--help", env={"COLUMNS": "200"}).stdout


def test_the_top_help_shows_jobs_and_hides_the_old_name(chutes) -> None:
    top = listed_commands(chutes("--help", env={"COLUMNS": "200"}).stdout)
    assert "jobs" in top and "job" not in top


def test_jobs_run_runs_a_job_without_the_note(chutes, tmp_path: Path) -> None:
    result = chutes("jobs", "run", REF, "table", "--json", '{"n": 2}', "--dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout[result.stdout.index("{") :]) == {"rows": 2, "inputs": []}
    assert "job table: succeeded" in result.stderr
    assert NOTE not in result.stderr


def test_the_old_name_still_runs_a_job_and_says_to_use_jobs(chutes, tmp_path: Path) -> None:
    result = chutes("job", "run", REF, "table", "--json", '{"n": 2}', "--dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout[result.stdout.index("{") :]) == {"rows": 2, "inputs": []}
    assert (tmp_path / "run" / "outputs" / "table.csv").read_text() == "0,0\n1,3\n"
    assert result.stderr.splitlines()[0] == NOTE
    assert result.stderr.count(NOTE) == 1


def test_the_old_name_keeps_exit_codes_and_errors(chutes, tmp_path: Path) -> None:
    result = chutes("job", "run", REF, "nope", cwd=tmp_path)
    assert result.returncode == 2
    assert NOTE in result.stderr
    assert "chute 'myuser-cli-jobs' has no job 'nope'; its jobs: hurry, table, wait" in result.stderr


def test_the_old_name_has_the_host_verbs_too(chutes) -> None:
    result = chutes("job", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert listed_commands(result.stdout) == VERBS
    assert "chutes jobs" in result.stdout
    # a host verb under the old name reaches the host client (nothing listens on port 9)
    listed = chutes("job", "list", "--host", "http://127.0.0.1:9", "--key", "k")
    assert listed.returncode != 0 and NOTE in listed.stderr and "Traceback" not in listed.stderr
