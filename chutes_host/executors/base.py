"""What every executor offers the supervisor, and the handle of one running instance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from chutes_host.gpus import Gpu
from chutes_host.spec import DeploymentSpec


class ExecutorError(Exception):
    """A chute that could not be prepared or started; `phase` names the step that failed."""

    def __init__(self, message: str, *, phase: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.phase = phase
        self.log_tail = log_tail


@dataclass
class InstanceHandle:
    """A started instance: where it listens (host:port, or the Unix socket `uds` when set) and how to
    find it again (pid or container id)."""

    host: str
    port: int
    pid: int | None = None
    container_id: str | None = None
    native: Any = None
    uds: str | None = None
    in_flight: int = 0  # requests the gateway is forwarding to it now
    handoff: Any = None  # the HandoffChannel its streams' client connections are handed over on, if any

    def __repr__(self) -> str:
        ident = f"pid={self.pid}" if self.pid else f"container={self.container_id}"
        where = f"unix:{self.uds}" if self.uds else f"{self.host}:{self.port}"
        return f"InstanceHandle({where}, {ident})"


class Executor(Protocol):
    name: str

    async def prepare(self, spec: DeploymentSpec, log_path: Path) -> None:
        """Builds what the chute needs to run (virtualenv or image); raises ExecutorError."""

    async def start(
        self, spec: DeploymentSpec, index: int, log_path: Path, *, gpus: Sequence[Gpu] = ()
    ) -> InstanceHandle:
        """Starts instance number index, with its output appended to log_path, seeing only `gpus`."""

    async def exit_code(self, handle: InstanceHandle) -> int | None:
        """Returns the instance's exit code once it has stopped, else None."""

    async def stop(self, handle: InstanceHandle) -> None:
        """Stops the instance, gracefully first."""

    async def discard(self, spec: DeploymentSpec) -> None:
        """Removes what prepare made for this version."""

    async def aclose(self) -> None:
        """Releases the executor's own resources."""
