"""What every executor offers the host (the `Executor` contract and the `Capabilities` it declares), and
the handle of one running instance."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from chutes_host.deploy.spec import DeploymentSpec
from chutes_host.jobs.launch import JobLaunch
from chutes_host.scheduling.gpus import Gpu

if TYPE_CHECKING:
    from chutes_host.observability.live import LiveDeployment


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


@dataclass(frozen=True)
class Capabilities:
    """What an executor declares it does beyond serving single instances; the host reads this, and never
    probes an executor's attributes or signatures to find out."""

    runs_jobs: bool = False  # `start(..., job=JobLaunch)` runs that job once (else the host refuses jobs)
    manages_replicas: bool = False  # a `ReplicaExecutor`: the supervisor gives it counts, never single starts

    def __repr__(self) -> str:
        return f"Capabilities(runs_jobs={self.runs_jobs}, manages_replicas={self.manages_replicas})"


@dataclass(frozen=True)
class Isolation:
    """How an executor confines chutes, as one line for the host's start; `sandboxed` is False when the host
    itself confines nothing (logged as a warning)."""

    summary: str
    sandboxed: bool


class Executor(Protocol):
    """Starts, watches and stops a chute's instances for the supervisor; makes no policy decisions."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def describe_isolation(self) -> Isolation | None:
        """Returns how chutes are confined, for the host's start (None: nothing worth saying)."""

    def image_repositories(self, slug: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """Returns where this executor keeps a chute's images, (its own, reserved for others), so a deploy
        cannot run or build FROM another chute's image; None when images are not kept by name."""

    async def prepare(self, spec: DeploymentSpec, log_path: Path) -> None:
        """Builds what the chute needs to run (virtualenv or image); raises ExecutorError."""

    async def start(
        self,
        spec: DeploymentSpec,
        index: int,
        log_path: Path,
        *,
        gpus: Sequence[Gpu] = (),
        job: JobLaunch | None = None,
    ) -> InstanceHandle:
        """Starts instance number index, with its output appended to log_path, seeing only `gpus`; with `job`
        (only when `capabilities.runs_jobs`), an instance that runs that job once."""

    async def exit_code(self, handle: InstanceHandle) -> int | None:
        """Returns the instance's exit code once it has stopped, else None."""

    async def stop(self, handle: InstanceHandle) -> None:
        """Stops the instance, gracefully first."""

    async def discard(self, spec: DeploymentSpec) -> None:
        """Removes what prepare made for this version."""

    async def aclose(self) -> None:
        """Releases the executor's own resources."""


class ReplicaExecutor(Executor, Protocol):
    """An executor that runs the replicas itself (`capabilities.manages_replicas`, e.g. Kubernetes): the
    supervisor sets how many, and the executor's watch reports how they are."""

    async def apply(self, spec: DeploymentSpec, replicas: int) -> None:
        """Rolls out this version with `replicas` instances."""

    async def scale(self, spec: DeploymentSpec, replicas: int) -> None:
        """Changes the number of instances of the running version."""

    async def remove(self, spec: DeploymentSpec) -> None:
        """Removes everything the deployment runs."""

    async def watch(self, dep: LiveDeployment, on_ready: Callable[[], Awaitable[None]]) -> None:
        """Mirrors the deployment's instances into `dep` until cancelled; calls on_ready once one is ready."""
