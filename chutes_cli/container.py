"""Running a built chute image: port bound to 127.0.0.1, GPUs when asked for and present."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx

from chutes_build.dockerfile import LABEL_PREFIX, PORT
from chutes_build.engine import translate_errors
from chutes_cli.errors import CLIError


@dataclass
class RunningChute:
    """A started chute container and where it listens."""

    container: Any
    url: str
    gpus: int

    def __repr__(self) -> str:
        return f"RunningChute({self.container.short_id!r}, url={self.url!r}, gpus={self.gpus})"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def image_labels(client: Any, ref: str) -> dict[str, str]:
    """Returns the labels of a local image; fails with a fix when the image is missing."""
    import docker.errors

    with translate_errors(f"cannot inspect {ref}"):
        try:
            return client.images.get(ref).labels or {}
        except docker.errors.ImageNotFound:
            raise CLIError(f"image {ref!r} is not on the engine; build it first with `chutes build`") from None


def engine_has_gpus(client: Any) -> bool:
    """Tells whether the engine can hand out NVIDIA GPUs (an nvidia runtime is configured)."""
    with translate_errors("cannot read the engine's info"):
        info = client.info()
    return "nvidia" in (info.get("Runtimes") or {})


def wanted_gpus(labels: dict[str, str]) -> int:
    """Reads the GPU count the chute's node selector asks for from the image labels."""
    raw = labels.get(f"{LABEL_PREFIX}node-selector")
    if not raw:
        return 0
    try:
        return int(json.loads(raw).get("gpu_count") or 0)
    except (ValueError, AttributeError):
        return 0


def start_chute(
    client: Any, ref: str, *, port: int | None = None, env: dict[str, str] | None = None, gpus: int = 0
) -> RunningChute:
    """Starts `ref` detached with its port published on 127.0.0.1 and returns it."""
    import docker.types

    port = port or free_port()
    requests = [docker.types.DeviceRequest(count=gpus, capabilities=[["gpu"]])] if gpus else None
    with translate_errors(f"cannot start {ref}"):
        container = client.containers.run(
            ref,
            detach=True,
            ports={f"{PORT}/tcp": ("127.0.0.1", port)},
            environment=env or {},
            device_requests=requests,
            labels={f"{LABEL_PREFIX}run": "1"},
        )
    return RunningChute(container, f"http://127.0.0.1:{port}", gpus)


def wait_until_ready(running: RunningChute, timeout: float = 60) -> float:
    """Polls `/_ready` until it answers 200; returns the seconds waited, or fails with the logs."""
    started = time.perf_counter()
    deadline = started + timeout
    with httpx.Client(timeout=2) as http:
        while time.perf_counter() < deadline:
            try:
                if http.get(f"{running.url}/_ready").status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            running.container.reload()
            if running.container.status in ("exited", "dead"):
                raise CLIError(f"the container exited before it was ready; its log:\n{logs_tail(running)}")
            time.sleep(0.05)
    raise CLIError(f"the container was not ready within {timeout:.0f} s; its log:\n{logs_tail(running)}")


def logs_tail(running: RunningChute, lines: int = 30) -> str:
    text = running.container.logs(tail=lines).decode(errors="replace").rstrip()
    return "\n".join(f"  | {line}" for line in text.splitlines()) or "  | (empty)"


def stop_chute(running: RunningChute) -> None:
    """Stops and removes the container; safe to call twice."""
    import docker.errors

    try:
        running.container.stop(timeout=5)
    except docker.errors.NotFound:
        return
    try:
        running.container.remove(force=True)
    except docker.errors.NotFound:
        pass
