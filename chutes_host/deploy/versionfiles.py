"""The files of each chute version (its unpacked app, virtualenv, image) that jobs still use: a
replaced version's files stay while a job started on it runs, and go when the last such job ends."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from chutes_host.deploy.spec import DeploymentSpec
from chutes_host.executors.base import Executor

log = logging.getLogger("chutes.host")


class VersionFiles:
    """Counts the jobs running on each chute version, and removes a retired version's files once none is left.

    Nothing is kept across a restart: a job's instance dies with the host, and the host removes every
    version but the current one when it starts again.
    """

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._jobs: dict[Path, int] = {}
        self._retired: dict[Path, DeploymentSpec] = {}

    def __repr__(self) -> str:
        return f"VersionFiles(in_use={len(self._jobs)}, waiting_to_remove={len(self._retired)})"

    def hold(self, spec: DeploymentSpec) -> None:
        """Records that a job runs on this version, so its files stay until `release`."""
        self._jobs[spec.directory] = self._jobs.get(spec.directory, 0) + 1

    async def release(self, spec: DeploymentSpec) -> None:
        """Records that a job of this version ended; removes the version's files if it was its last and
        the version was retired meanwhile."""
        left = self._jobs.get(spec.directory, 0) - 1
        if left > 0:
            self._jobs[spec.directory] = left
            return
        self._jobs.pop(spec.directory, None)
        retired = self._retired.pop(spec.directory, None)
        if retired is not None:
            log.info("%s: the last job on version %d ended; removing its files", spec.slug, spec.version)
            await self._remove(retired)

    async def retire(self, spec: DeploymentSpec) -> None:
        """Removes a replaced version's files now, or when its last running job ends."""
        running = self._jobs.get(spec.directory, 0)
        if running:
            log.info(
                "%s: version %d is replaced, but %d job(s) started on it still run; its files stay until they end",
                spec.slug,
                spec.version,
                running,
            )
            self._retired[spec.directory] = spec
            return
        await self._remove(spec)

    async def _remove(self, spec: DeploymentSpec) -> None:
        await self.executor.discard(spec)
        await asyncio.to_thread(shutil.rmtree, spec.directory, True)
