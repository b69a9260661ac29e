"""The container engine, through the `docker` package: build, push, run; its errors become CLIErrors."""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from chutes_build.errors import BuildError

STEP_LINE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # the engine colours RUN's stderr red
NOISE = ("--->", "Removing intermediate container")
TAIL_LINES = 15


class BuildFailed(BuildError):
    """A Dockerfile step failed; the message names the step and ends with its last log lines."""


@dataclass
class BuildStep:
    """One Dockerfile instruction as the engine ran it."""

    number: int
    instruction: str
    cached: bool = False
    log: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"BuildStep({self.number}, {self.instruction!r}, cached={self.cached})"


@dataclass
class BuildResult:
    """What a build produced: the image id, tag, its steps and how long it took."""

    image_id: str
    tag: str
    steps: list[BuildStep]
    seconds: float

    @property
    def cached_steps(self) -> int:
        return sum(step.cached for step in self.steps)


def describe_host() -> str:
    return os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Turns the docker package's connection and API errors into CLIErrors that say what to do."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise BuildError(f"{action}: image not found: {exc.explanation or exc}") from None
    except docker.errors.APIError as exc:
        raise BuildError(f"{action}: the engine refused: {exc.explanation or exc}") from None
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        raise BuildError(
            f"{action}: no container engine answers at {describe_host()} ({short(exc)}). "
            "Start Docker (or `podman system service`) and set DOCKER_HOST to its socket."
        ) from None


def short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text[:300]


def connect_engine(timeout: float = 120) -> Any:
    """Returns a docker client for DOCKER_HOST after checking that the engine answers."""
    import docker

    with translate_errors("cannot reach the engine"):
        client = docker.from_env(timeout=timeout)
        client.ping()
    return client


def require_image(client: Any, ref: str) -> None:
    """Fails with a fix when `ref` is not on the engine: builds never pull."""
    import docker.errors

    with translate_errors(f"cannot inspect {ref}"):
        try:
            client.images.get(ref)
        except docker.errors.ImageNotFound:
            raise BuildError(
                f"the base image {ref!r} is not on the engine at {describe_host()}, and chutes build "
                "never pulls. Make it with `docker build --build-arg BASE_IMAGE=python:3.11-slim-bookworm "
                f"-t {ref} - < Dockerfile.base` (or `docker pull` it), or choose another with --base-image."
            ) from None


def build_image(
    client: Any,
    write_context: Callable[[Any], None],
    tag: str,
    *,
    no_cache: bool = False,
    network: str | None = None,
    memory: int | None = None,
    on_line: Callable[[str, BuildStep | None], None] | None = None,
) -> BuildResult:
    """Streams a build of the tar that `write_context` writes, and returns its result."""
    started = time.perf_counter()
    steps: list[BuildStep] = []
    image_id = ""
    with tempfile.TemporaryFile() as tar:
        write_context(tar)
        tar.seek(0)
        with translate_errors(f"building {tag} failed"):
            stream = client.api.build(
                fileobj=tar,
                custom_context=True,
                tag=tag,
                rm=True,
                forcerm=True,
                pull=False,
                nocache=no_cache,
                network_mode=network,
                container_limits={"memory": memory, "memswap": memory} if memory else None,
                decode=True,
            )
            for chunk in stream:
                if "error" in chunk:
                    raise failure(tag, steps, chunk)
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                for line in ANSI_ESCAPE.sub("", chunk.get("stream", "")).splitlines():
                    step = record_line(steps, line)
                    if on_line is not None and line.strip():
                        on_line(line, step)
    if not image_id:
        with translate_errors(f"inspecting {tag}"):
            image_id = client.images.get(tag).id
    return BuildResult(image_id, tag, steps, time.perf_counter() - started)


def record_line(steps: list[BuildStep], line: str) -> BuildStep | None:
    """Files a build-log line under its step; returns the step the line starts, if any."""
    match = STEP_LINE.match(line.strip())
    if match:
        steps.append(BuildStep(int(match.group(1)), match.group(3)))
        return steps[-1]
    if steps:
        if line.strip() == "---> Using cache":
            steps[-1].cached = True
        steps[-1].log.append(line)
    return None


def failure(tag: str, steps: list[BuildStep], chunk: dict) -> BuildFailed:
    """Builds the error for a failed step, with its instruction and last log lines."""
    message = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error", "")
    if not steps:
        return BuildFailed(f"building {tag} failed before the first step: {message.strip()}")
    step = steps[-1]
    tail = [line for line in step.log if line.strip() and not line.strip().startswith(NOISE)]
    shown = "\n".join(f"  | {line}" for line in tail[-TAIL_LINES:]) or "  | (no output)"
    return BuildFailed(
        f"building {tag} failed at step {step.number}: {step.instruction}\n{message.strip()}\n"
        f"last lines of its output:\n{shown}"
    )


def push_target(source: str, registry: str) -> tuple[str, str]:
    """Returns (repository, tag) of `source` under `registry`, dropping any registry it had."""
    name, tag = source, "latest"
    head, sep, tail = source.rpartition(":")
    if sep and "/" not in tail:
        name, tag = head, tail
    if is_registry(name):
        name = name.split("/", 1)[1]
    return f"{registry.rstrip('/')}/{name}", tag


def push_image(client: Any, source: str, registry: str, on_chunk: Callable[[dict], None] | None = None) -> str:
    """Tags `source` under `registry` and pushes it; returns the pushed reference.

    `on_chunk` gets each progress message of the engine (`id`, `status`, `progressDetail`).
    """
    target_repo, tag = push_target(source, registry)
    with translate_errors(f"pushing to {registry} failed"):
        client.images.get(source).tag(target_repo, tag)
        for chunk in client.api.push(target_repo, tag, stream=True, decode=True):
            if "error" in chunk:
                raise BuildError(
                    f"pushing {target_repo}:{tag} to {registry} failed: {chunk['error'].strip()}. "
                    "Check that the registry runs and is reachable from the engine (plain-HTTP "
                    "registries outside 127.0.0.0/8 must be listed as insecure in the engine's config)."
                )
            if on_chunk is not None:
                on_chunk(chunk)
    return f"{target_repo}:{tag}"


def is_registry(repository: str) -> bool:
    first = repository.split("/", 1)[0]
    return "/" in repository and ("." in first or ":" in first or first == "localhost")
