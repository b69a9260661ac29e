"""Every executor declares what it does (`Capabilities`) and has every method the host calls on it."""

from __future__ import annotations

import inspect

import pytest

from chutes_host.executors.base import Capabilities, Executor, ReplicaExecutor
from chutes_host.executors.docker import DockerExecutor
from chutes_host.executors.kubernetes import KubernetesExecutor
from chutes_host.executors.process import ProcessExecutor

EXECUTORS = [ProcessExecutor, DockerExecutor, KubernetesExecutor]


def contract_methods(protocol: type) -> set[str]:
    return {name for name, value in vars(protocol).items() if inspect.isfunction(value) and not name.startswith("_")}


@pytest.mark.parametrize("executor", EXECUTORS, ids=lambda cls: cls.name)
def test_executor_declares_capabilities_and_has_the_contracts_methods(executor: type) -> None:
    assert isinstance(executor.__dict__.get("capabilities"), Capabilities)
    missing = {name for name in contract_methods(Executor) if not callable(getattr(executor, name, None))}
    assert not missing
    if executor.capabilities.manages_replicas:
        missing = {name for name in contract_methods(ReplicaExecutor) if not callable(getattr(executor, name, None))}
        assert not missing


@pytest.mark.parametrize("executor", EXECUTORS, ids=lambda cls: cls.name)
def test_every_executor_takes_the_keywords_the_host_passes_to_start(executor: type) -> None:
    params = inspect.signature(executor.start).parameters
    assert {"gpus", "job"} <= set(params)


def test_capabilities_say_which_executors_run_jobs_and_replicas() -> None:
    assert [cls.name for cls in EXECUTORS if cls.capabilities.runs_jobs] == ["process", "docker"]
    assert [cls.name for cls in EXECUTORS if cls.capabilities.manages_replicas] == ["kubernetes"]
