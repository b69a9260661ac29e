"""The docker executor: each instance is a container of the chute's image on the host's engine (DOCKER_HOST)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chutes.handoff import HANDOFF_ENV
from chutes.image import AptInstall, RunCommand
from chutes_host.deploy.spec import DeploymentSpec
from chutes_host.executors.base import Capabilities, ExecutorError, InstanceHandle, Isolation
from chutes_host.executors.process import socket_dir
from chutes_host.gateway.handoff import HandoffListener
from chutes_host.jobs.launch import JOB_DIR_IN_CONTAINER, JOB_PORT_IN_CONTAINER, JobLaunch
from chutes_host.observability.logs import read_tail
from chutes_host.scheduling.gpus import Gpu, gpu_env

log = logging.getLogger("chutes_host.executors.docker")
CHUTE_PORT = 8000
HANDOFF_DIR = "/run/chutes-handoff"  # in the container: the directory of its stream handoff socket
IMAGE_REPO = "localhost/chutes-host"
OWNER_LABEL = "ai.chutes.host"
STOP_GRACE = 5
HOME = "/home/chutes"
# the uid and gid of the `chutes` user that built images run as; images that declare root run as it too
RUN_USER = (1000, 1000)


class BuildStopped(Exception):
    """Raised inside a build's output loop to leave it, which makes the engine abort the build."""


class DockerExecutor:
    """Builds (or pulls) the chute's image once per version and runs instances as containers."""

    name = "docker"
    capabilities = Capabilities(runs_jobs=True)

    def __init__(self, config) -> None:
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
        self._network_lock = threading.Lock()
        self._users: dict[str, tuple[int, int]] = {}
        self._remove_leftovers()
        self._containers: dict[str, Any] = {}
        # stream handoff: container id -> where its instance connects for its end of the socket pair
        self._handoffs: dict[str, HandoffListener] = {}
        self.run_dir = socket_dir(config.data_dir)

    def describe_isolation(self) -> Isolation | None:
        return None

    def image_repositories(self, slug: str) -> None:
        return None  # a deploy's images are checked against this engine's own in prepare (`_own_images`)

    async def prepare(self, spec: DeploymentSpec, log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        tag = version_tag(spec, self.owner)
        if await asyncio.to_thread(self._has_image, tag):
            return
        manifest = spec.manifest
        if manifest.get("deploy_image") or not manifest.get("build_image"):
            ref = manifest.get("deploy_image") or manifest.get("image")
            if not ref:
                raise ExecutorError("the manifest names no image; deploy with --image REF", phase="building")
            check_image_ref(ref, self._own_images(spec), what="the image to run")
            await asyncio.to_thread(self._ensure_image, ref, log_path)
            # the version holds its image by a tag of its own, so discarding another version that
            # used the same image (e.g. `deploy --image` of an earlier version's build) only untags
            await asyncio.to_thread(self._tag, ref, tag)
        else:
            stop = threading.Event()
            try:
                await asyncio.to_thread(self._build_image, spec, tag, log_path, stop)
            except asyncio.CancelledError:  # the chute was deleted or the host is stopping: end the build too
                stop.set()
                raise

    async def start(
        self,
        spec: DeploymentSpec,
        index: int,
        log_path: Path,
        *,
        gpus: Sequence[Gpu] = (),
        job: JobLaunch | None = None,
    ) -> InstanceHandle:
        """Starts instance number index; with `job`, a container that runs that job once and serves its ports."""
        tag = version_tag(spec, self.owner)
        handle = await asyncio.to_thread(self._run, spec, index, tag, log_path, tuple(gpus), job)
        listener = self._handoffs.get(handle.container_id)
        if listener is not None:
            listener.attach(handle, asyncio.get_running_loop())
        return handle

    async def exit_code(self, handle: InstanceHandle) -> int | None:
        return await asyncio.to_thread(self._exit_code, handle.native)

    async def stop(self, handle: InstanceHandle) -> None:
        self._containers.pop(handle.container_id, None)
        await asyncio.to_thread(self._remove, handle.native)
        self._end_handoff(handle)

    def _end_handoff(self, handle: InstanceHandle) -> None:
        listener = self._handoffs.pop(handle.container_id, None)
        if listener is not None:
            listener.close()
        if handle.handoff is not None:
            handle.handoff.close()

    async def discard(self, spec: DeploymentSpec) -> None:
        # only this version's own tag: the image itself goes once no other version's tag names it
        await asyncio.to_thread(self._remove_image, version_tag(spec, self.owner))
        await asyncio.to_thread(self._remove_networks, spec.slug)

    async def aclose(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(self._remove, c) for c in list(self._containers.values())))
        self._containers.clear()
        for listener in self._handoffs.values():
            listener.close()
        self._handoffs.clear()
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

    def _tag(self, ref: str, tag: str) -> None:
        repository, _, name = tag.rpartition(":")
        self.client.images.get(ref).tag(repository, name)

    def _build_image(self, spec: DeploymentSpec, tag: str, log_path: Path, stop: threading.Event) -> None:
        """Builds the version's image from the manifest's recipe; tenant code runs only in `RUN` steps.

        Setting `stop` ends the build at its next output line: leaving the engine's stream aborts it.
        """
        from docker.utils import parse_bytes

        from chutes_build.engine import build_image, require_image
        from chutes_build.errors import BuildError
        from chutes_build.plan import plan_image
        from chutes_build.recipe import RecipeError, image_from_data

        with open(log_path, "a") as log:
            log.write(f"building {tag}\n")
        try:
            recipe = spec.manifest.get("image_recipe")
            if recipe is None:
                raise BuildError("the bundle carries no image recipe; deploy again with a current `chutes` CLI")
            image = image_from_data(recipe)
            base = image.base_image or self.config.docker_base_image
            if base:
                check_image_ref(base, self._own_images(spec), what="the base image")
            plan = plan_image(build_spec(spec), image, spec.app_dir, tag=tag, base_image=base, untrusted=True)
            require_image(self.client, plan.base_image)
            with open(log_path, "a") as log:

                def on_line(line: str, step: object) -> None:
                    if stop.is_set():
                        raise BuildStopped
                    log.write(line.rstrip() + "\n")
                    log.flush()

                # without apt or RUN steps the build needs no network at all
                network = None if any(isinstance(d, AptInstall | RunCommand) for d in image.directives) else "none"
                result = build_image(
                    self.client,
                    plan.context.write_tar,
                    tag,
                    network=network,
                    memory=parse_bytes(self.config.docker_memory),
                    on_line=on_line,
                )
                log.write(f"built {tag} ({result.image_id[:19]}); {result.cached_steps} steps from cache\n")
        except BuildStopped:
            with open(log_path, "a") as log:
                log.write(f"stopped building {tag}\n")
        except (BuildError, RecipeError) as exc:
            with open(log_path, "a") as log:
                log.write(f"error: {exc}\n")
            raise ExecutorError(
                f"building the image failed: {exc}", phase="building", log_tail=read_tail(log_path)
            ) from None

    def _run(
        self,
        spec: DeploymentSpec,
        index: int,
        ref: str,
        log_path: Path,
        gpus: tuple[Gpu, ...],
        job: JobLaunch | None = None,
    ) -> InstanceHandle:
        import docker.errors

        listener = None
        if job is None and getattr(self.config, "stream_handoff", False):
            try:
                listener = HandoffListener(self.run_dir, *self._run_user(ref))
            except OSError as exc:  # e.g. a host that may not chown: its streams are relayed
                log.warning("no stream handoff for %s: %s", spec.slug, exc)
        try:
            container = self.create(spec, index, ref, gpus=gpus, job=job, handoff=listener)
        except BaseException:
            if listener is not None:
                listener.close()
            raise
        self._containers[container.id] = container
        if listener is not None:
            self._handoffs[container.id] = listener
        try:
            container.start()
            container.reload()
            address = container.attrs["NetworkSettings"]["Networks"][self._network(spec)]["IPAddress"]
        except docker.errors.DockerException as exc:
            self._containers.pop(container.id, None)
            self._remove(container)
            if listener is not None:
                self._handoffs.pop(container.id, None)
                listener.close()
            hint = ""
            if gpus and "nvidia" not in (self.client.info().get("Runtimes") or {}):
                hint = " (the engine has no NVIDIA runtime; install the NVIDIA Container Toolkit)"
            raise ExecutorError(f"cannot start a container of {ref}: {exc}{hint}", phase="starting") from None
        threading.Thread(target=_pump_logs, args=(container, log_path), daemon=True).start()
        # the host reaches the container on its own network; nothing is published on the host's ports
        return InstanceHandle(host=address, port=CHUTE_PORT, container_id=container.id, native=container)

    def create(
        self,
        spec: DeploymentSpec,
        index: int,
        ref: str,
        *,
        gpus: tuple[Gpu, ...],
        job: JobLaunch | None = None,
        handoff: HandoffListener | None = None,
    ) -> Any:
        """Creates (does not start) an instance's container, confined, with exactly these GPUs.

        With `job`, the container runs that job once (`python -m chutes.jobrun`), its directory bound at /job.
        With `handoff`, the listener's directory is bound at HANDOFF_DIR and named in CHUTES_HANDOFF_SOCKET,
        where the instance connects for the client connections of its streams (chutes_host.gateway.handoff).
        """
        import docker.errors
        import docker.types

        requests = None
        if gpus:
            requests = [docker.types.DeviceRequest(device_ids=[g.uuid for g in gpus], capabilities=[["gpu"]])]
        read_only = bool(spec.manifest.get("read_only_root", True))
        try:
            uid, gid = self._run_user(ref)
            labels = {OWNER_LABEL: self.owner, "ai.chutes.slug": spec.slug, "ai.chutes.instance": str(index)}
            options: dict[str, Any] = {}
            if job is not None:
                _give_tree(job.work_dir, uid, gid)
                entrypoint = ["python", "-m", "chutes.jobrun", spec.entrypoint, job.name, "--dir", JOB_DIR_IN_CONTAINER]
                entrypoint += ["--id", job.id, "--host", "0.0.0.0", "--port", str(JOB_PORT_IN_CONTAINER)]
                options = {
                    "entrypoint": entrypoint,
                    "command": [],
                    "volumes": {str(job.work_dir): {"bind": JOB_DIR_IN_CONTAINER, "mode": "rw"}},
                    "healthcheck": {"test": ["NONE"]},
                }
                labels["ai.chutes.job"] = job.id
            handoff_env = {}
            if handoff is not None:
                options["volumes"] = {str(handoff.directory): {"bind": HANDOFF_DIR, "mode": "ro"}}
                handoff_env[HANDOFF_ENV] = f"{HANDOFF_DIR}/{handoff.SOCKET}"
            return self.client.containers.create(
                ref,
                **options,
                network=self._network(spec),
                environment={
                    **spec.env,
                    "CHUTES_INSTANCE": str(index),
                    "CHUTES_SLUG": spec.slug,
                    **handoff_env,
                    **({"HOME": HOME} if read_only else {}),
                    # last: an image's own NVIDIA_VISIBLE_DEVICES=all, or a secret, must not widen the request
                    **gpu_env(gpus),
                },
                labels=labels,
                device_requests=requests,
                user=f"{uid}:{gid}",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                ipc_mode="private",
                mem_limit=self.config.docker_memory,
                memswap_limit=self.config.docker_memory,
                pids_limit=self.config.docker_pids,
                read_only=read_only,
                # with a read-only root, a chute still writes scratch files to /tmp and caches to its home
                tmpfs={"/tmp": "rw,exec,nosuid,nodev", HOME: f"rw,exec,nosuid,nodev,uid={uid},gid={gid}"}
                if read_only
                else None,
            )
        except docker.errors.DockerException as exc:
            raise ExecutorError(f"cannot create a container of {ref}: {exc}", phase="starting") from None

    def _network(self, spec: DeploymentSpec) -> str:
        """Returns the chute's own bridge network, made on first use; `internal` unless it may reach out."""
        import docker.errors

        egress = bool(spec.manifest.get("allow_external_egress", False))
        name = f"chutes-{self.owner[:8]}-{spec.slug}" + ("-egress" if egress else "")
        with self._network_lock:
            try:
                self.client.networks.get(name)
                return name
            except docker.errors.NotFound:
                pass
            try:
                self.client.networks.create(
                    name,
                    driver="bridge",
                    check_duplicate=True,
                    internal=not egress,
                    labels={OWNER_LABEL: self.owner, "ai.chutes.slug": spec.slug},
                )
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # another instance made it first
                    raise
        return name

    def _own_images(self, spec: DeploymentSpec) -> str:
        """Returns the prefix of the images this host built for the versions of the spec's chute."""
        return f"{IMAGE_REPO}/{self.owner[:12]}/{spec.slug}:"

    def _run_user(self, ref: str) -> tuple[int, int]:
        """Returns the uid and gid to run the image as: its declared user, or chutes' 1000 if that is root."""
        image = self.client.images.get(ref)
        if image.id in self._users:
            return self._users[image.id]
        declared = (image.attrs.get("Config") or {}).get("User") or ""
        name, _, group = declared.partition(":")
        ids = None
        if name not in ("", "root", "0"):
            ids = _numeric_user(name, group) or self._lookup_user(ref, name, group)
        self._users[image.id] = ids or RUN_USER
        return self._users[image.id]

    def _lookup_user(self, ref: str, name: str, group: str) -> tuple[int, int] | None:
        """Reads a named user's ids from the image's /etc/passwd, without running the image."""
        import io
        import tarfile

        container = self.client.containers.create(ref, entrypoint=["true"], network_disabled=True)
        try:
            stream, _ = container.get_archive("/etc/passwd")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.next()
                text = tar.extractfile(member).read().decode(errors="replace") if member else ""
        finally:
            container.remove(force=True)
        for line in text.splitlines():
            fields = line.split(":")
            if len(fields) >= 4 and fields[0] == name and fields[2].isdigit() and fields[3].isdigit():
                return int(fields[2]), int(group) if group.isdigit() else int(fields[3])
        return None

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

    def _remove_networks(self, slug: str | None = None) -> None:
        """Removes this host's networks (of one chute) that no container uses any more."""
        import docker.errors

        labels = [f"{OWNER_LABEL}={self.owner}"] + ([f"ai.chutes.slug={slug}"] if slug else [])
        for network in self.client.networks.list(filters={"label": labels}):
            try:
                network.remove()
            except docker.errors.APIError:  # still in use, e.g. by the version that replaced this one
                pass

    def _remove_leftovers(self) -> None:
        """Removes containers and networks a previous run of this host left behind (e.g. after a crash)."""
        for container in self.client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={self.owner}"}):
            self._remove(container)
        self._remove_networks()


def version_tag(spec: DeploymentSpec, owner: str) -> str:
    """Returns the tag that holds the image of one chute version of one host (`owner`) on the engine."""
    return f"{IMAGE_REPO}/{owner[:12]}/{spec.slug}:v{spec.version}"


def _give_tree(directory: Path, uid: int, gid: int) -> None:
    """Gives a job's directory to the container's user, so it can write its outputs (links are not followed)."""
    import os

    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(directory):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)
    os.chown(directory, uid, gid, follow_symlinks=False)


def _numeric_user(name: str, group: str) -> tuple[int, int] | None:
    if not name.isdigit():
        return None
    return int(name), int(group) if group.isdigit() else int(name)


def build_spec(spec: DeploymentSpec) -> Any:
    """Returns what the Dockerfile needs about the chute, read from its manifest (no import)."""
    from chutes_build.dockerfile import ChuteSpec

    module, attr = spec.entrypoint.split(":", 1)
    keys = ("name", "path", "method", "stream", "passthrough")
    cords = tuple({k: c.get(k) for k in keys} for c in spec.manifest.get("cords") or [] if isinstance(c, dict))
    return ChuteSpec(spec.slug, module, attr, cords, spec.manifest.get("node_selector") or {})


def check_image_ref(ref: str, own_prefix: str, *, what: str, reserved: Sequence[str] = ()) -> None:
    """Refuses a reference to another chute's image on the engine (or in `reserved` repositories, e.g. the
    registry a cluster pulls from), by tag or by image id: the host's one check, in deployments."""
    from chutes_host.deploy.deployments import DeployError
    from chutes_host.deploy.deployments import check_image_ref as check

    try:
        check(ref, own=(own_prefix,), reserved=(IMAGE_REPO + "/", *reserved), what=what)
    except DeployError as exc:
        raise ExecutorError(str(exc), phase="building") from None


def _pump_logs(container: Any, log_path: Path) -> None:
    try:
        with open(log_path, "ab") as log:
            for chunk in container.logs(stream=True, follow=True):
                log.write(chunk)
                log.flush()
    except Exception:  # the container is gone; its log ends here
        pass
