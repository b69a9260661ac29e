"""Executors start and stop a chute's instances: `process` (subprocesses) or `docker`."""

from __future__ import annotations

from chutes_host.executors.base import Executor, ExecutorError, InstanceHandle


def create_executor(kind: str, config) -> Executor:  # noqa: ANN001
    """Returns the executor named by `--executor` for this host config."""
    if kind == "process":
        from chutes_host.executors.process import ProcessExecutor

        return ProcessExecutor(config)
    if kind == "docker":
        from chutes_host.executors.docker import DockerExecutor

        return DockerExecutor(config)
    raise ValueError(f"unknown executor {kind!r}; choose 'process' or 'docker'")


__all__ = ["Executor", "ExecutorError", "InstanceHandle", "create_executor"]
