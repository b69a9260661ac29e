"""The docker executor: each instance is a container of the chute's image on the host's engine (DOCKER_HOST)."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chutes_host.executors.base import ExecutorError, InstanceHandle
from chutes_host.executors.process import _run_logged, find_free_port
from chutes_host.gpus import Gpu, gpu_env
from chutes_host.logs import read_tail
from chutes_host.spec import DeploymentSpec

CHUTE_PORT = 8000
IMAGE_FILE = "image-ref"
OWNER_LABEL = "ai.chutes.host"
STOP_GRACE = 5


class DockerExecutor:
    """Builds (or pulls) the chute's image once per version and runs instances as containers."""

    name = "docker"

    def __init__(self, config) -> None:  # noqa: ANN001
        import docker

        self.config = config
        self.owner = hashlib.sha256(str(Path(config.data_dir).resolve()).encode()).hexdigest()[:16]
        self.client = None
        try:
            self.client = docker.from_env(timeout=300)
            self.client.ping()
        except Exception as exc:
            if self.client is not None:
                self.client.close()
            raise ExecutorError(
                f"cannot reach a container engine ({type(exc).__name__}: {exc}); start one and set DOCKER_HOST, "
                "or use --executor process",
                phase="starting",
            ) from None
        self._remove_leftovers()
        self._containers: dict[str, Any] = {}

    async def prepare(self, spec: DeploymentSpec, log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        marker = spec.directory / IMAGE_FILE
        if marker.is_file() and await asyncio.to_thread(self._has_image, marker.read_text().strip()):
            return
        manifest = spec.manifest
        if manifest.get("deploy_image") or not manifest.get("build_image"):
            ref = manifest.get("deploy_image") or manifest.get("image")
            if not ref:
                raise ExecutorError("the manifest names no image; deploy with --image REF", phase="building")
            await asyncio.to_thread(self._ensure_image, ref, log_path)
        else:
            ref = f"localhost/chutes-host/{spec.slug}:v{spec.version}"
            await self._build_image(spec, ref, log_path)
        marker.write_text(ref + "\n")

    async def start(
        self, spec: DeploymentSpec, index: int, log_path: Path, *, gpus: Sequence[Gpu] = ()
    ) -> InstanceHandle:
        ref = (spec.directory / IMAGE_FILE).read_text().strip()
        return await asyncio.to_thread(self._run, spec, index, ref, log_path, tuple(gpus))

    async def exit_code(self, handle: InstanceHandle) -> int | None:
        return await asyncio.to_thread(self._exit_code, handle.native)

    async def stop(self, handle: InstanceHandle) -> None:
        self._containers.pop(handle.container_id, None)
        await asyncio.to_thread(self._remove, handle.native)

    async def discard(self, spec: DeploymentSpec) -> None:
        # only images this host built; the engine refuses to untag one a container (e.g. of a newer
        # version deployed with --image) still uses, and that refusal is what we want
        marker = spec.directory / IMAGE_FILE
        if marker.is_file() and marker.read_text().startswith("localhost/chutes-host/"):
            await asyncio.to_thread(self._remove_image, marker.read_text().strip())

    async def aclose(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(self._remove, c) for c in list(self._containers.values())))
        self._containers.clear()
        self.client.close()

    def _has_image(self, ref: str) -> bool:
        import docker.errors

        try:
            self.client.images.get(ref)
            return True
        except docker.errors.ImageNotFound:
            return False

    def _ensure_image(self, ref: str, log_path: Path) -> None:
        import docker.errors

        if self._has_image(ref):
            return
        with open(log_path, "a") as log:
            log.write(f"pulling {ref}\n")
        try:
            self.client.images.pull(ref)
        except docker.errors.DockerException as exc:
            raise ExecutorError(
                f"image {ref!r} is not on the engine and pulling it failed: {exc}",
                phase="building",
                log_tail=read_tail(log_path),
            ) from None

    async def _build_image(self, spec: DeploymentSpec, ref: str, log_path: Path) -> None:
        argv = [
            sys.executable,
            "-c",
            "from chutes_cli.main import app; app()",
            "build",
            spec.entrypoint,
            "--tag",
            ref,
            "--context",
            str(spec.app_dir),
        ]
        if self.config.docker_base_image:
            argv += ["--base-image", self.config.docker_base_image]
        await _run_logged(argv, log_path, phase="building", what="building the image", cwd=spec.app_dir)

    def _run(self, spec: DeploymentSpec, index: int, ref: str, log_path: Path, gpus: tuple[Gpu, ...]) -> InstanceHandle:
        import docker.errors

        port = find_free_port()
        container = self.create(spec, index, ref, port=port, gpus=gpus)
        self._containers[container.id] = container
        try:
            container.start()
        except docker.errors.DockerException as exc:
            self._containers.pop(container.id, None)
            self._remove(container)
            hint = ""
            if gpus and "nvidia" not in (self.client.info().get("Runtimes") or {}):
                hint = " (the engine has no NVIDIA runtime; install the NVIDIA Container Toolkit)"
            raise ExecutorError(f"cannot start a container of {ref}: {exc}{hint}", phase="starting") from None
        threading.Thread(target=_pump_logs, args=(container, log_path), daemon=True).start()
        return InstanceHandle(host="127.0.0.1", port=port, container_id=container.id, native=container)

    def create(self, spec: DeploymentSpec, index: int, ref: str, *, port: int, gpus: tuple[Gpu, ...]) -> Any:
        """Creates (does not start) an instance's container, asking the engine for exactly these GPUs."""
        import docker.errors
        import docker.types

        requests = None
        if gpus:
            requests = [docker.types.DeviceRequest(device_ids=[g.uuid for g in gpus], capabilities=[["gpu"]])]
        try:
            return self.client.containers.create(
                ref,
                ports={f"{CHUTE_PORT}/tcp": ("127.0.0.1", port)},
                # an image's own NVIDIA_VISIBLE_DEVICES=all must not reach past the request on an nvidia runtime
                environment={"CHUTES_INSTANCE": str(index), "CHUTES_SLUG": spec.slug, **gpu_env(gpus)},
                labels={OWNER_LABEL: self.owner, "ai.chutes.slug": spec.slug, "ai.chutes.instance": str(index)},
                device_requests=requests,
            )
        except docker.errors.DockerException as exc:
            raise ExecutorError(f"cannot create a container of {ref}: {exc}", phase="starting") from None

    def _exit_code(self, container: Any) -> int | None:
        import docker.errors

        try:
            container.reload()
        except docker.errors.NotFound:
            return -1
        if container.status in ("exited", "dead"):
            return int(container.attrs["State"].get("ExitCode", -1))
        return None

    def _remove(self, container: Any) -> None:
        import docker.errors

        try:
            container.stop(timeout=STOP_GRACE)
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if "removal" not in str(exc) and "already in progress" not in str(exc):
                raise

    def _remove_image(self, ref: str) -> None:
        import docker.errors

        try:
            self.client.images.remove(ref, noprune=False)
        except docker.errors.DockerException:
            pass

    def _remove_leftovers(self) -> None:
        """Removes containers a previous run of this host left behind (e.g. after a crash)."""
        for container in self.client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={self.owner}"}):
            self._remove(container)


def _pump_logs(container: Any, log_path: Path) -> None:
    try:
        with open(log_path, "ab") as log:
            for chunk in container.logs(stream=True, follow=True):
                log.write(chunk)
                log.flush()
    except Exception:  # the container is gone; its log ends here
        pass
