"""Runs every example of docs/cli.md, in order, and compares what it prints with the page.

In ```console blocks, `$ ` lines are commands and the lines under them what they print (`...`
matches anything). A ```python file=NAME block is written to NAME. `chutes run` and
`python -m chutes.serve` start a server in the background, on a free port that stands in for 8000
(and for the host's 8080) in the commands and outputs that follow.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli.conftest import Server, free_port, wait_until_ready

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
BLOCK = re.compile(r"^```(console|python file=(\S+))\n(.*?)^```", re.M | re.S)
SERVER_COMMANDS = ("chutes run ", "python -m chutes.serve ")


@dataclass
class Step:
    command: str | None = None
    expected: list[str] = field(default_factory=list)
    file: str | None = None
    content: str = ""


def read_steps() -> list[Step]:
    """Returns the files to write and the commands to run, in page order."""
    steps: list[Step] = []
    for match in BLOCK.finditer(DOC.read_text()):
        if match.group(2):
            steps.append(Step(file=match.group(2), content=match.group(3)))
            continue
        for line in match.group(3).splitlines():
            if line.startswith("$ "):
                steps.append(Step(command=line[2:]))
            elif steps and steps[-1].command is not None:
                steps[-1].expected.append(line)
    return steps


def normalize(text: str) -> str:
    return " ".join(text.split())


def assert_printed(expected: list[str], actual: str, command: str) -> None:
    """Checks that each expected line (with `...` as a wildcard) is a line of the actual output."""
    lines = [normalize(line) for line in actual.splitlines()]
    for line in expected:
        if not line.strip() or line.strip() == "...":
            continue
        pattern = re.compile(".*".join(re.escape(part) for part in normalize(line).split("...")))
        assert any(pattern.fullmatch(candidate) for candidate in lines), (
            f"`{command}` did not print:\n{line}\n--- it printed:\n{actual}"
        )


class Session:
    """The shell state of the page: working directory, environment and the running server."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.cwd = root
        self.env = env
        self.server: Server | None = None
        self.port = free_port()

    def localize(self, text: str) -> str:
        """Replaces the page's ports with the ones this run uses."""
        text = text.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
        text = text.replace("8000", str(self.port))
        return text.replace("--port 8001", f"--port {self.port + 1}")

    def run(self, step: Step, tmp: Path) -> None:
        command = self.localize(step.command)
        expected = [self.localize(line) for line in step.expected]
        failing = any(line.startswith("Error:") for line in expected)
        if command.startswith("cd "):
            self.cwd = (self.cwd / command[3:].strip()).resolve()
            return
        if command.startswith(SERVER_COMMANDS) and not failing:
            self.start_server(step, tmp)
            return
        if command.startswith(SERVER_COMMANDS):
            command += f" --port {self.port}"
        elif command.startswith("chutes invoke") and "--url" not in command and "--chute" not in command:
            command += f" --url http://127.0.0.1:{self.port}"
        result = subprocess.run(
            ["bash", "-c", command], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=120
        )
        output = (result.stdout + result.stderr).replace(self.env["HOME"], "~")
        if failing:
            assert result.returncode != 0, f"`{command}` should have failed:\n{output}"
            assert "Traceback (most recent call last)" not in output or "importing module" in output
        else:
            assert result.returncode == 0, f"`{command}` failed ({result.returncode}):\n{output}"
        assert_printed(expected, output, command)

    def start_server(self, step: Step, tmp: Path) -> None:
        self.stop_server()
        self.port = free_port()
        command = self.localize(step.command) + f" --port {self.port}"
        out, err = tmp / f"server-{self.port}.out", tmp / f"server-{self.port}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                shlex.split(command), cwd=self.cwd, env=self.env, stdout=stdout, stderr=stderr, start_new_session=True
            )
        self.server = Server(process, f"http://127.0.0.1:{self.port}", self.port, out, err)
        wait_until_ready(self.server)
        assert_printed([self.localize(line) for line in step.expected], self.server.stdout, command)

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def test_every_example_of_the_cli_docs(tmp_path: Path, cli_env: dict[str, str]):
    root = tmp_path / "work"
    root.mkdir()
    env = {**cli_env, "COLUMNS": "100", "PATH": f"{Path(sys.executable).parent}:{cli_env['PATH']}"}
    session = Session(root, env)
    steps = read_steps()
    assert sum(step.command is not None for step in steps) > 40
    try:
        for step in steps:
            if step.file:
                (session.cwd / step.file).write_text(step.content)
            else:
                session.run(step, tmp_path)
    finally:
        session.stop_server()


@pytest.mark.parametrize("pattern", [r"chutes invoke .*--chute", r"chutes run .*--dev", r"chutes init .*--template"])
def test_the_docs_show_the_main_features(pattern: str):
    assert re.search(pattern, DOC.read_text())
