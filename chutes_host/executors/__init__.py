"""Executors start and stop a chute's instances: `process` (subprocesses), `docker` or `kubernetes`."""

from __future__ import annotations

from chutes_host.executors.base import Executor, ExecutorError, InstanceHandle


def create_executor(kind: str, config) -> Executor:
    """Returns the executor named by `--executor` for this host config."""
    if kind == "process":
        from chutes_host.executors.process import ProcessExecutor

        return ProcessExecutor(config)
    if kind == "docker":
        from chutes_host.executors.docker import DockerExecutor

        return DockerExecutor(config)
    if kind == "kubernetes":
        from chutes_host.executors.kubernetes import KubernetesExecutor

        return KubernetesExecutor(config)
    raise ValueError(f"unknown executor {kind!r}; choose 'process', 'docker' or 'kubernetes'")


__all__ = ["Executor", "ExecutorError", "InstanceHandle", "create_executor"]
