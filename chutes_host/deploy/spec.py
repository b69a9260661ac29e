"""The immutable description of one deployed chute version that executors run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from chutes.node_selector import NodeSelector
from chutes_host.scheduling.scaler import Bounds
from chutes_host.store.models import Deployment


@dataclass(frozen=True)
class DeploymentSpec:
    """A chute version as unpacked on disk: `directory` holds manifest.json and app/."""

    slug: str
    name: str
    owner_id: int
    owner_name: str
    version: int
    directory: Path
    entrypoint: str
    public: bool
    max_instances: int
    image: str | None = None
    min_instances: int = 0  # set by `chutes chutes scale`: autoscaling never goes below it (0: unset)
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)
    # the chute's secrets, added to each instance's environment; never in a repr, a log or the API
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def node_selector(self) -> NodeSelector:
        """Returns the GPUs each instance needs (the runtime's default, one GPU, for a manifest without one)."""
        return NodeSelector(**(self.manifest.get("node_selector") or {}))

    @property
    def scale_bounds(self) -> Bounds:
        """Returns the range the scaler keeps this chute in, from its manifest and the scale set by the user."""
        manifest = self.manifest
        idle = manifest.get("shutdown_after_seconds")
        threshold = manifest.get("scaling_threshold") or 0.75
        return Bounds(
            floor=self.min_instances,
            ceiling=max(manifest.get("max_instances") or 1, self.max_instances, self.min_instances),
            idle_after=float(idle) if idle else None,
            capacity=threshold * (manifest.get("concurrency") or 1),
        )

    @cached_property
    def stream_routes(self) -> frozenset[tuple[bytes, bytes]]:
        """Returns the (method, path) of each streaming cord, at its route and at its alias."""
        routes = set()
        for cord in self.manifest.get("cords") or []:
            if isinstance(cord, dict) and cord.get("stream") and isinstance(cord.get("method"), str):
                for path in (cord.get("path"), cord.get("alias")):
                    if isinstance(path, str):
                        routes.add((cord["method"].encode(), path.encode()))
        return frozenset(routes)

    @property
    def holder(self) -> str:
        """Returns how placement messages name this chute, e.g. 'alice/llm'."""
        return f"{self.owner_name}/{self.name}"

    @property
    def app_dir(self) -> Path:
        return self.directory / "app"

    @property
    def requirements(self) -> Path:
        return self.directory / "requirements.txt"

    @property
    def logs_dir(self) -> Path:
        return self.directory.parent / "logs"

    @classmethod
    def from_row(cls, row: Deployment, chutes_dir: Path) -> DeploymentSpec:
        """Takes a database row, and returns the spec of its current version."""
        return cls(
            slug=row.slug,
            name=row.name,
            owner_id=row.owner_id,
            owner_name=row.owner.name,
            version=row.version,
            directory=chutes_dir / row.slug / str(row.version),
            entrypoint=row.entrypoint,
            public=row.public,
            max_instances=row.max_instances,
            min_instances=row.scaled_to or 0,
            image=row.image,
            manifest=json.loads(row.manifest_json),
        )
