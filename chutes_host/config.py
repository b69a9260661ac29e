"""The settings a host runs with: where it keeps its data, its domain, database and executor."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from chutes_host.scheduling.scaler import ScalePolicy

DEFAULT_SANDBOX_UIDS = range(3_000_000, 3_100_000)
MiB = 1024 * 1024


def default_data_dir() -> Path:
    """Returns the data directory used when none is given (env CHUTES_HOST_DATA_DIR or ~/.chutes/host)."""
    env = os.environ.get("CHUTES_HOST_DATA_DIR")
    return Path(env) if env else Path.home() / ".chutes" / "host"


@dataclass(frozen=True)
class HostConfig:
    """Everything `chutes host serve` needs; defaults give SQLite and the process executor."""

    data_dir: Path = field(default_factory=default_data_dir)
    domain: str = "localhost"
    db_url: str | None = None
    executor: str = "process"
    bind: str = "127.0.0.1"
    port: int = 8080
    max_bundle_bytes: int = 200 * MiB
    max_unpacked_bytes: int = 1024 * MiB
    max_bundle_files: int = 20_000
    start_timeout: float = 300.0
    health_interval: float = 1.0
    docker_base_image: str | None = None
    docker_memory: str = "8g"
    docker_pids: int = 1024
    public_url: str | None = None
    sandbox: str = "auto"
    sandbox_uids: range = DEFAULT_SANDBOX_UIDS
    build_index_url: str | None = (
        None  # process executor: the index builds install from (chutes_host.sandbox.pipconfig)
    )
    unsafe_shared_process: bool = False
    gpus: str | None = None
    metrics_key: str | None = field(default=None, repr=False)
    scaling: ScalePolicy = field(default_factory=ScalePolicy)
    job_quota_bytes: int = 10 * 1024 * MiB  # the outputs of finished jobs each user may keep
    job_max_outputs: int = 10_000  # files and directories a job may leave in its output_dir
    kubeconfig: str | None = None  # kubernetes executor: None reads the in-cluster service account or KUBECONFIG
    k8s_namespace: str = "chutes"
    k8s_host_id: str | None = None  # the label value that marks this host's objects (default: from data_dir)
    k8s_cpu: str = "1"
    k8s_memory: str = "8Gi"
    registry: str | None = None  # where chute images built here are pushed for the cluster to pull
    direct_gateway: bool = (
        True  # forward what it can from the server protocol's callbacks (chutes_host.gateway.fastpath)
    )
    stream_handoff: bool = False  # single-tenant hosts only: streams' client connections go to the instance
    dashboard_over_http: bool = False  # dashboard sessions over plain HTTP on names chutes' pages can set cookies for

    @property
    def database_url(self) -> str:
        """Returns the SQLAlchemy URL: the given one, else a SQLite file in the data dir."""
        return self.db_url or f"sqlite:///{self.data_dir / 'host.db'}"

    @property
    def gpus_file(self) -> Path:
        """Returns where the host records which instance holds which GPU."""
        return self.data_dir / "gpus.json"

    @property
    def chutes_dir(self) -> Path:
        return self.data_dir / "chutes"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    def chute_url(self, slug: str) -> str:
        """Returns the public URL of a chute, e.g. http://alice-hello.localhost:8080 (or from public_url)."""
        if self.public_url:
            return self.public_url.format(slug=slug)
        port = "" if self.port in (80, 443) else f":{self.port}"
        scheme = "https" if self.port == 443 else "http"
        return f"{scheme}://{slug}.{self.domain}{port}"
