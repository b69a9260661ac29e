"""Pure helpers of the engine layer: build-log parsing, push targets, GPU requests from labels."""

from __future__ import annotations

import pytest

from chutes_build.engine import BuildStep, failure, push_target, record_line
from chutes_cli.container import wanted_gpus


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("localhost/chutes-e2e/x:test", ("127.0.0.1:5000/chutes-e2e/x", "test")),
        ("myuser/x:1.0", ("127.0.0.1:5000/myuser/x", "1.0")),
        ("ghcr.io/org/x:2", ("127.0.0.1:5000/org/x", "2")),
        ("registry:5000/x", ("127.0.0.1:5000/x", "latest")),
        ("plain", ("127.0.0.1:5000/plain", "latest")),
    ],
)
def test_push_target_moves_the_image_under_the_registry(source: str, target: tuple[str, str]) -> None:
    assert push_target(source, "127.0.0.1:5000/") == target


def test_build_log_lines_are_filed_under_their_steps() -> None:
    steps: list[BuildStep] = []
    for line in ["Step 1/3 : FROM base", " ---> abc", "Step 2/3 : COPY a b", " ---> Using cache", "Step 3/3 : RUN x"]:
        record_line(steps, line)
    record_line(steps, "output of x")
    assert [(s.number, s.instruction, s.cached) for s in steps] == [
        (1, "FROM base", False),
        (2, "COPY a b", True),
        (3, "RUN x", False),
    ]
    error = failure("t:1", steps, {"error": "boom", "errorDetail": {"message": "The command returned 2"}})
    assert error.message.startswith("building t:1 failed at step 3: RUN x\nThe command returned 2")
    assert error.message.endswith("  | output of x")


def test_a_failure_before_any_step_says_so() -> None:
    error = failure("t:1", [], {"error": "dockerfile parse error line 3"})
    assert error.message == "building t:1 failed before the first step: dockerfile parse error line 3"


@pytest.mark.parametrize(
    ("labels", "gpus"),
    [
        ({"ai.chutes.node-selector": '{"gpu_count": 2}'}, 2),
        ({"ai.chutes.node-selector": "{}"}, 0),
        ({"ai.chutes.node-selector": "not json"}, 0),
        ({}, 0),
    ],
)
def test_gpus_are_read_from_the_node_selector_label(labels: dict[str, str], gpus: int) -> None:
    assert wanted_gpus(labels) == gpus
