"""The kubernetes executor: each chute is a Deployment, Service, Secret and NetworkPolicy in one namespace of an
existing cluster; Kubernetes places and restarts the pods, the host applies, watches and routes.

It talks to the API server with lightkube's async client (typed resources, server-side apply, small).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chutes_host.deploy.deployments import DeployError, check_image_ref, manifest_images
from chutes_host.deploy.k8s_render import (
    CHUTE_PORT,
    HOST_LABEL,
    PRODUCT_LABEL,
    VERSION_LABEL,
    PodShape,
    RenderError,
    label_value,
    object_name,
    owned_selector,
    render_manifests,
)
from chutes_host.deploy.spec import DeploymentSpec
from chutes_host.executors.base import Capabilities, ExecutorError, InstanceHandle, Isolation
from chutes_host.jobs.launch import JobLaunch
from chutes_host.observability.live import Instance, LiveDeployment
from chutes_host.observability.logs import read_tail

log = logging.getLogger("chutes.host")

FIELD_MANAGER = "chutes-host"
KEEP_POD_LOGS = 20  # log files of gone pods a chute keeps, newest first
WATCH_RETRY = 1.0
# container waiting reasons that mean the image could not be had, and those that mean it cannot start
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
START_FAILURES = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})


@dataclass(eq=False)
class Pod(Instance):
    """An instance that is a pod: Kubernetes starts and restarts it; the host only reads its state."""

    pod: str = ""
    node: str | None = None
    version: int = 0
    running: bool = False  # its container runs (its log can be followed)
    seen_restarts: int = field(default=-1, repr=False)  # the container run whose log is being copied

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "pod": self.pod, "node": self.node, "version": self.version}


class KubernetesExecutor:
    """Applies each chute version's manifests and mirrors its pods into the supervisor's live state."""

    name = "kubernetes"
    capabilities = Capabilities(manages_replicas=True)  # the supervisor asks for replicas, never single starts

    def __init__(self, config) -> None:
        try:
            from lightkube import AsyncClient, KubeConfig
            from lightkube.core.exceptions import ConfigError
        except ImportError:
            raise ExecutorError(
                "the kubernetes executor needs its client library: pip install 'chutes[kubernetes]'", phase="starting"
            ) from None

        self.config = config
        host_id = config.k8s_host_id or hashlib.sha256(str(Path(config.data_dir).resolve()).encode()).hexdigest()[:16]
        self.shape = PodShape(
            namespace=config.k8s_namespace, host_id=host_id, cpu=config.k8s_cpu, memory=config.k8s_memory
        )
        try:
            kube = KubeConfig.from_file(config.kubeconfig) if config.kubeconfig else KubeConfig.from_env()
        except (ConfigError, OSError) as exc:
            raise ExecutorError(
                f"no Kubernetes cluster configured ({exc}); pass --kubeconfig FILE, set KUBECONFIG, or run the "
                "host inside the cluster with a service account",
                phase="starting",
            ) from None
        self._kube = kube
        # a field manager per host: two hosts sharing a namespace conflict on a name instead of overwriting
        self.field_manager = f"{FIELD_MANAGER}-{host_id}"
        self.client = AsyncClient(config=kube, namespace=self.shape.namespace, field_manager=self.field_manager)
        self._images: dict[tuple[str, int], str] = {}
        self.replicas: dict[str, int] = {}  # the count last applied, per chute slug
        # when each chute's Deployment was made: older pods with its labels are a deleted namesake's, going
        self.created: dict[str, Any] = {}
        self.pulling: dict[str, str] = {}  # pod name: the kubelet's "Pulling image ..." while it pulls
        self._mirrors: dict[str, _Mirror] = {}
        self._events: asyncio.Task | None = None
        self._logs: dict[str, asyncio.Task] = {}
        self._builder: Any = None
        self._check_namespace()

    def describe_isolation(self) -> Isolation:
        summary = (
            f"kubernetes executor: chutes run as pods in namespace {self.shape.namespace!r} (host label "
            f"{self.shape.host_id}), non-root, no privilege escalation, read-only root where the chute allows"
        )
        return Isolation(summary, sandboxed=False)  # confined by the cluster's pod security, not a host sandbox

    async def prepare(self, spec: DeploymentSpec, log_path: Path) -> None:
        """Decides the version's image: `--image`, the chute's image reference, or a build pushed to --registry."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        own, reserved = self.image_repositories(spec.slug)
        for image, what in manifest_images(spec.manifest):  # checked at upload too; this covers older manifests
            try:
                check_image_ref(image, own=own, reserved=reserved, what=what)
            except DeployError as exc:
                raise ExecutorError(str(exc), phase="building") from None
        manifest = spec.manifest
        ref = manifest.get("deploy_image") or (None if manifest.get("build_image") else manifest.get("image"))
        if not ref:
            ref = await self._build_and_push(spec, log_path)
        with open(log_path, "a") as f:
            f.write(f"image {ref}\n")
        self._images[(spec.slug, spec.version)] = ref

    def image_repositories(self, slug: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Returns (this chute's, every chute's) repository prefixes of the images the host builds: on its engine,
        and in --registry, where the nodes pull them. A deploy may run or build FROM only its own."""
        from chutes_host.executors.docker import IMAGE_REPO

        if not self.config.registry:
            return (), (IMAGE_REPO + "/",)
        return (f"{self._repository(slug)}:",), (IMAGE_REPO + "/", f"{self._repository('')}")

    async def apply(self, spec: DeploymentSpec, replicas: int) -> None:
        """Creates or updates the chute's Secret, NetworkPolicy, Deployment and Service by server-side apply."""
        from lightkube import codecs

        try:
            objects = render_manifests(
                spec, image=self.image_of(spec), replicas=replicas, shape=self.shape, products=await self._products()
            )
        except RenderError as exc:
            raise ExecutorError(str(exc), phase="starting") from None
        for data in objects:
            obj = codecs.from_dict(data)
            applied = await self._call(f"apply {data['kind']} {data['metadata']['name']}", self.client.apply(obj))
            if data["kind"] == "Deployment":
                self.created[spec.slug] = applied.metadata.creationTimestamp
        self.replicas[spec.slug] = replicas

    async def scale(self, spec: DeploymentSpec, replicas: int) -> None:
        await self.apply(spec, replicas)

    async def remove(self, spec: DeploymentSpec) -> None:
        """Deletes every object the host made for the chute (its pods go with their Deployment)."""
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.apps_v1 import Deployment
        from lightkube.resources.core_v1 import Secret, Service
        from lightkube.resources.networking_v1 import NetworkPolicy
        from lightkube.types import CascadeType

        name = object_name(spec.slug)
        kinds = ((Deployment, name), (Service, name), (Secret, f"{name}-env"), (NetworkPolicy, name))
        for kind, obj_name in kinds:
            try:
                found = await self.client.get(kind, obj_name)
                if (found.metadata.labels or {}).get(HOST_LABEL) != label_value(self.shape.host_id):
                    log.warning("%s: not deleting %s %s: another host made it", spec.slug, kind.__name__, obj_name)
                    continue
                await self.client.delete(kind, obj_name, cascade=CascadeType.BACKGROUND)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise self._error(f"delete {kind.__name__} {obj_name}", exc) from None
        self.replicas.pop(spec.slug, None)
        self.created.pop(spec.slug, None)
        for key in [k for k in self._images if k[0] == spec.slug]:
            del self._images[key]

    async def watch(self, dep: LiveDeployment, on_ready: Callable[[], Awaitable[None]]) -> None:
        """Mirrors the chute's pods into `dep` as they change, until cancelled: the current version's pods in
        `dep.instances`, older versions' (still serving during a rollout) in `dep.previous`."""
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import Pod as PodResource

        pods: dict[str, Any] = {}
        mirror = self._mirrors[dep.spec.slug] = _Mirror(dep, self, on_ready)
        if self._events is None or self._events.done():
            self._events = asyncio.create_task(self._watch_pulls(), name="pull events")
        selector = owned_selector(self.shape, dep.spec.slug)
        try:
            while True:
                try:
                    listed = self.client.list(PodResource, labels=_labels(selector))
                    pods = {p.metadata.name: p async for p in listed}
                    await mirror.update(pods)
                    # a watch without a resource version first replays every pod as ADDED: nothing is missed
                    async for op, pod in self.client.watch(PodResource, labels=_labels(selector)):
                        if op == "DELETED":
                            pods.pop(pod.metadata.name, None)
                        else:
                            pods[pod.metadata.name] = pod
                        await mirror.update(pods)
                except ApiError as exc:
                    log.warning("%s: watching pods failed (%s); retrying", dep.spec.slug, exc.status.message)
                except Exception as exc:  # a dropped connection: list and watch again
                    log.warning("%s: the pod watch ended (%s: %s); retrying", dep.spec.slug, type(exc).__name__, exc)
                await asyncio.sleep(WATCH_RETRY)
        finally:
            if self._mirrors.get(dep.spec.slug) is mirror:
                del self._mirrors[dep.spec.slug]
            mirror.close()

    async def _watch_pulls(self) -> None:
        """Follows the kubelets' image pull events, which no pod status shows, so a pod reads `pulling`."""
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import Event

        while True:
            try:
                async for _op, event in self.client.watch(Event, fields={"involvedObject.kind": "Pod"}):
                    pod, reason = event.involvedObject.name, event.reason
                    if reason == "Pulling":
                        self.pulling[pod] = event.message or "pulling the image"
                    elif reason in ("Pulled", "Failed", "BackOff", "Created", "Started", "Killing"):
                        if self.pulling.pop(pod, None) is None:
                            continue
                    else:
                        continue
                    for mirror in list(self._mirrors.values()):
                        if pod in mirror.known:
                            await mirror.refresh()
            except ApiError as exc:
                if exc.status.code == 403:
                    log.warning("the host may not watch events (%s): pods show `starting` while they pull", exc)
                    return
                log.warning("watching pull events failed (%s); retrying", exc.status.message)
            except Exception as exc:
                log.warning("the pull event watch ended (%s: %s); retrying", type(exc).__name__, exc)
            await asyncio.sleep(WATCH_RETRY)

    async def pod_log_tail(self, pod: str, lines: int = 40) -> str:
        """Returns the last lines the pod's container wrote (its last run's, while it crash-loops)."""
        try:
            return "".join([line async for line in self.client.log(pod, tail_lines=lines)]).rstrip("\n")
        except Exception:
            return ""

    def follow_log(self, pod: Pod) -> None:
        """Copies a running container's log into the pod's instance log, until the container ends."""
        task = self._logs.get(pod.pod)
        if task is not None and not task.done():
            task.cancel()
        resumed = pod.seen_restarts < 0  # the first run this host sees may have logged before it looked
        pod.seen_restarts = pod.restarts
        self._logs[pod.pod] = asyncio.create_task(self._copy_log(pod, resumed=resumed), name=f"log {pod.pod}")

    def forget_log(self, pod: str) -> None:
        task = self._logs.pop(pod, None)
        if task is not None:
            task.cancel()

    async def _copy_log(self, pod: Pod, *, resumed: bool) -> None:
        pod.log_path.parent.mkdir(parents=True, exist_ok=True)
        since = None
        if resumed and pod.log_path.exists():  # a restarted host: copy only what came after its last line
            since = max(1, math.ceil(time.time() - pod.log_path.stat().st_mtime))
        with contextlib.suppress(Exception):
            with open(pod.log_path, "a") as f:
                async for line in self.client.log(pod.pod, follow=True, since=since):
                    f.write(line)
                    f.flush()

    def image_of(self, spec: DeploymentSpec) -> str:
        ref = self._images.get((spec.slug, spec.version))
        if ref is None:
            raise ExecutorError(f"no image prepared for {spec.slug} version {spec.version}", phase="building")
        return ref

    async def exit_code(self, handle: InstanceHandle) -> int | None:
        return None

    async def stop(self, handle: InstanceHandle) -> None:
        return None

    async def start(
        self, spec: DeploymentSpec, index: int, log_path: Path, *, gpus: Any = (), job: JobLaunch | None = None
    ) -> InstanceHandle:
        raise ExecutorError("the kubernetes executor runs pods through replicas, not one start at a time", phase="")

    async def discard(self, spec: DeploymentSpec) -> None:
        self._images.pop((spec.slug, spec.version), None)

    async def aclose(self) -> None:
        if self._events is not None:
            self._events.cancel()
        for task in self._logs.values():
            task.cancel()
        self._logs.clear()
        await self.client.close()
        if self._builder is not None:
            await self._builder.aclose()

    async def _products(self) -> list[str]:
        """Returns the GPU products the cluster's nodes carry (none when the host may not list nodes)."""
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import Node

        try:
            nodes = [n async for n in self.client.list(Node)]
        except ApiError:
            return []
        return sorted({(n.metadata.labels or {}).get(PRODUCT_LABEL) for n in nodes} - {None})

    async def _build_and_push(self, spec: DeploymentSpec, log_path: Path) -> str:
        """Builds the chute's image on the docker engine and pushes it to --registry, which the cluster pulls from."""
        if not self.config.registry:
            raise ExecutorError(
                "this chute's image is built from its recipe, and the cluster can only pull images: start the host "
                "with --registry HOST:PORT (a registry the cluster's nodes pull from), or deploy with --image REF",
                phase="building",
            )
        from chutes_host.executors.docker import DockerExecutor, version_tag

        if self._builder is None:
            self._builder = DockerExecutor(self.config)
        await self._builder.prepare(spec, log_path)
        local = version_tag(spec, self._builder.owner)
        repository = self._repository(spec.slug)
        tag = f"v{spec.version}-{self._tag_secret(spec)}"
        with open(log_path, "a") as f:
            f.write(f"pushing {repository}:{tag}\n")
        await asyncio.to_thread(self._push, local, repository, tag, log_path)
        return f"{repository}:{tag}"

    def _repository(self, slug: str) -> str:
        return f"{self.config.registry.rstrip('/')}/chutes/{slug}"

    def _tag_secret(self, spec: DeploymentSpec) -> str:
        """Returns the part of a pushed tag no tenant can derive from their own (an HMAC with the host's key): a
        reference to another chute's image that slips past the check (another name for the registry, say) still
        has to guess it."""
        from chutes_host.store.secrets import KEY_FILE, read_or_create_key

        key = read_or_create_key(Path(self.config.data_dir) / KEY_FILE)
        message = f"chutes image tag\0{spec.slug}\0{spec.version}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()[:20]

    def _push(self, local: str, repository: str, tag: str, log_path: Path) -> None:
        client = self._builder.client
        client.images.get(local).tag(repository, tag)
        errors = [
            line.get("error")
            for line in client.images.push(repository, tag=tag, stream=True, decode=True)
            if line.get("error")
        ]
        if errors:
            raise ExecutorError(
                f"pushing {repository}:{tag} failed: {errors[-1]}", phase="building", log_tail=read_tail(log_path)
            )

    def _check_namespace(self) -> None:
        """Refuses to start when the namespace is missing (a host may create none: it holds a namespaced Role)."""
        from lightkube import Client
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import Namespace

        namespace = self.shape.namespace
        try:
            with contextlib.closing(Client(config=self._kube)) as client:
                client.get(Namespace, namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                raise ExecutorError(
                    f"namespace {namespace!r} does not exist in the cluster; create it "
                    f"(`kubectl create namespace {namespace}`) or pass --namespace",
                    phase="starting",
                ) from None
            if exc.status.code in (401,):
                raise self._error("connect", exc) from None
            # 403: the host's least-privilege Role may not read namespaces; applying will tell
        except Exception as exc:
            raise ExecutorError(
                f"cannot reach the Kubernetes API server ({type(exc).__name__}: {exc}); check --kubeconfig",
                phase="starting",
            ) from None

    async def _call(self, what: str, call: Awaitable[Any]) -> Any:
        from lightkube.core.exceptions import ApiError

        try:
            return await call
        except ApiError as exc:
            raise self._error(what, exc) from None
        except ExecutorError:
            raise
        except Exception as exc:
            raise ExecutorError(
                f"{what}: the Kubernetes API server did not answer ({type(exc).__name__}: {exc})", phase="starting"
            ) from None

    def _error(self, what: str, exc: Any) -> ExecutorError:
        """Translates an API server refusal into a message that says what to do."""
        status, namespace = exc.status, self.shape.namespace
        code, message = status.code, status.message
        if code == 404 and "namespace" in (message or "").lower():
            text = f"namespace {namespace!r} does not exist; create it (`kubectl create namespace {namespace}`)"
        elif code == 403:
            text = (
                f"the host's Kubernetes identity may not {what} in namespace {namespace!r} ({message}); grant it "
                "the Role in deploy/kubernetes/rbac.yaml"
            )
        elif code == 401:
            text = f"the Kubernetes API server refused the host's credentials ({message}); check --kubeconfig"
        elif code == 409:
            text = (
                f"{what}: another manager changed fields the host sets ({message}); undo the manual change "
                "(or delete the object) and deploy again"
            )
        elif code == 422:
            text = f"{what}: the API server refused the manifest: {message}"
        else:
            text = f"{what}: the API server answered {code}: {message}"
        return ExecutorError(text, phase="starting")


class _Mirror:
    """Turns the pods of one chute into the supervisor's instances, keeping each pod's Instance object (the
    gateway counts requests on its handle) and copying each container run's log."""

    def __init__(self, dep: LiveDeployment, executor: KubernetesExecutor, on_ready: Callable[[], Awaitable[None]]):
        self.dep = dep
        self.executor = executor
        self.on_ready = on_ready
        self.known: dict[str, Pod] = {}
        self.proven = False
        self.pods: dict[str, Any] = {}

    async def refresh(self) -> None:
        """Reads the pods as last seen again (an image pull started or ended)."""
        await self.update(self.pods)

    async def update(self, pods: dict[str, Any]) -> None:
        self.pods = pods
        dep, spec = self.dep, self.dep.spec
        # A chute deleted and deployed again under its name: until the garbage collector marks the old pods (seconds
        # on a loaded cluster) they carry the same labels, and a crash-looping one would fail the new deploy.
        since = self.executor.created.get(spec.slug)
        if since is not None:
            pods = {k: p for k, p in pods.items() if not _made_before(p, since)}
        for gone in set(self.known) - set(pods):
            self.executor.forget_log(gone)
            self.executor.pulling.pop(gone, None)
            del self.known[gone]
        current: list[Pod] = []
        older: list[Pod] = []
        for name, obj in sorted(pods.items(), key=lambda kv: kv[1].metadata.creationTimestamp or 0):
            pod = self.known.get(name)
            if pod is None:
                used = {p.index for p in self.known.values()}
                index = min(set(range(len(used) + 1)) - used)
                pod = self.known[name] = Pod(index=index, log_path=spec.logs_dir / f"instance-{name}.log", pod=name)
            _read_pod(pod, obj, pulling=self.executor.pulling.get(name))
            if pod.running and pod.seen_restarts != pod.restarts:
                self.executor.follow_log(pod)
            if pod.phase == "stopping":
                continue
            (current if pod.version == spec.version else older).append(pod)
        dep.instances = current
        if older:
            shadow = dep.previous or LiveDeployment(spec=spec, phase="starting")
            shadow.instances = older
            shadow.refresh()
            dep.previous = shadow
        else:
            dep.previous = None
        if any(p.phase == "ready" for p in current):
            if dep.phase == "failed":  # e.g. an image pull that succeeded on a later try
                dep.phase, dep.error, dep.failed_phase, dep.log_tail = "starting", None, None, ""
            if not self.proven:
                self.proven = True
                await self.on_ready()
        elif not self.proven:
            await self._fail_if_stuck(current)
        dep.refresh()
        if dep.phase == "cold" and self.executor.replicas.get(spec.slug, 0) > 0:
            dep.phase = "starting"  # the Deployment asks for pods the watch has not seen yet
        _prune_logs(spec.logs_dir, keep=set(self.known))

    async def _fail_if_stuck(self, current: list[Pod]) -> None:
        """Fails the deploy when its pods cannot come up by themselves: a crash loop or an image that cannot be had."""
        for pod in current:
            if pod.phase == "crash-looping":
                tail = await self.executor.pod_log_tail(pod.pod) or read_tail(pod.log_path)
                self.dep.fail("starting", f"pod {pod.pod} is crash-looping: {pod.waiting}", tail)
                return
            if pod.phase in ("pull-failed", "failed-to-start"):
                phase = "pulling" if pod.phase == "pull-failed" else "starting"
                self.dep.fail(phase, f"pod {pod.pod}: {pod.waiting}", "")
                return

    def close(self) -> None:
        for name in self.known:
            self.executor.forget_log(name)


def _read_pod(pod: Pod, obj: Any, *, pulling: str | None = None) -> None:
    """Reads a pod object's state into the Instance: phase, why it waits, where it listens, restarts."""
    meta, status = obj.metadata, obj.status
    pod.version = int((meta.labels or {}).get(VERSION_LABEL, "0") or 0)
    pod.node = obj.spec.nodeName if obj.spec else None
    ip = status.podIP if status else None
    pod.handle = _handle(pod, ip)
    pod.gpus = ()
    pod.waiting = None
    containers = (status.containerStatuses if status else None) or []
    container = containers[0] if containers else None
    pod.running = bool(container and container.state and container.state.running)
    if container is not None:
        pod.restarts = container.restartCount or 0
        last = container.lastState.terminated if container.lastState else None
        if last is not None:
            pod.last_exit_code = last.exitCode
    if meta.deletionTimestamp is not None:
        pod.phase = "stopping"
        return
    scheduled = next((c for c in (status.conditions or []) if c.type == "PodScheduled"), None) if status else None
    if scheduled is not None and scheduled.status == "False":
        pod.phase, pod.waiting, pod.gpus = "pending", scheduled.message or scheduled.reason, None
        return
    state = container.state if container is not None else None
    if state is not None and state.waiting is not None:
        reason, message = state.waiting.reason or "", state.waiting.message or ""
        if reason == "CrashLoopBackOff":
            pod.phase = "crash-looping"
            pod.waiting = f"restarted {pod.restarts} time(s), last exit code {pod.last_exit_code}"
        elif reason in START_FAILURES and pod.restarts:
            # it ran and exited, and the kubelet could not start it again either: still a crash loop, whose
            # own last words (the previous container's log) say more than the kubelet's error
            pod.phase = "crash-looping"
            restarted = f"restarted {pod.restarts} time(s), last exit code {pod.last_exit_code}"
            pod.waiting = f"{restarted}, then {reason}: {message}".rstrip(": ")
        elif reason in PULL_FAILURES:
            pod.phase, pod.waiting = "pull-failed", f"{reason}: {message}".rstrip(": ")
        elif reason in START_FAILURES:
            pod.phase, pod.waiting = "failed-to-start", f"{reason}: {message}".rstrip(": ")
        elif pulling is not None and reason in ("ContainerCreating", "PodInitializing"):
            pod.phase, pod.waiting = "pulling", pulling
        else:
            pod.phase, pod.waiting = "starting", reason or None
        return
    if state is not None and state.running is not None:
        pod.phase = "ready" if container.ready and pod.handle is not None else "starting"
        return
    if state is not None and state.terminated is not None:
        pod.phase, pod.last_exit_code = "exited", state.terminated.exitCode
        return
    pod.phase = "starting"
    pod.waiting = "scheduled, waiting for the node" if scheduled is not None else "waiting for the scheduler"


def _made_before(obj: Any, moment: Any) -> bool:
    made = obj.metadata.creationTimestamp
    return made is not None and made < moment


def _handle(pod: Pod, ip: str | None) -> InstanceHandle | None:
    if not ip:
        return None
    if pod.handle is not None and pod.handle.host == ip:
        return pod.handle  # the same object: the gateway counts requests on it
    return InstanceHandle(host=ip, port=CHUTE_PORT, container_id=pod.pod)


def _labels(selector: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in selector.split(","))


def _prune_logs(logs_dir: Path, *, keep: set[str]) -> None:
    """Removes the log files of the oldest gone pods beyond KEEP_POD_LOGS."""
    gone = [p for p in logs_dir.glob("instance-*.log") if p.stem.removeprefix("instance-") not in keep]
    gone.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for path in gone[KEEP_POD_LOGS:]:
        path.unlink(missing_ok=True)
