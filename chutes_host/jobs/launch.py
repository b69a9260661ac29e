"""What an executor needs to run a job instead of serving a chute: which job, and its directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

JOB_DIR_IN_CONTAINER = "/job"
JOB_PORT_IN_CONTAINER = 8000


@dataclass(frozen=True)
class JobLaunch:
    """One job run: its id, the job's name, and the directory (args.json, inputs/, outputs/) it may write."""

    id: str
    name: str
    work_dir: Path

    @property
    def short(self) -> str:
        return self.id[:10]

    def __repr__(self) -> str:
        return f"JobLaunch({self.short}, {self.name!r})"
