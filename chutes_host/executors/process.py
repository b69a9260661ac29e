"""The process executor: each instance is `python -m chutes.serve` in the version's own virtualenv."""

from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import os
import signal
import site
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from chutes_host.executors.base import ExecutorError, InstanceHandle
from chutes_host.logs import read_tail
from chutes_host.spec import DeploymentSpec

READY_MARK = ".chutes-env-ready"
PASSED_ENV = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LANG",
        "TZ",
        "TMPDIR",
        "LD_LIBRARY_PATH",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
    }
)
PASSED_ENV_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "HF_", "TORCH_", "SSL_", "REQUESTS_CA_", "PIP_", "XDG_")
STOP_GRACE = 5.0


class ProcessExecutor:
    """Runs instances as subprocesses on free 127.0.0.1 ports; the zero-dependency default."""

    name = "process"

    def __init__(self, config) -> None:  # noqa: ANN001
        self.config = config
        self._procs: dict[int, asyncio.subprocess.Process] = {}

    async def prepare(self, spec: DeploymentSpec, log_path: Path) -> None:
        venv = spec.directory / "venv"
        if (venv / READY_MARK).exists():
            return
        log_path.parent.mkdir(parents=True, exist_ok=True)
        await _run_logged(
            [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
            log_path,
            phase="building",
            what="creating the virtualenv",
        )
        _link_host_packages(venv)
        if spec.requirements.is_file() and spec.requirements.read_text().strip():
            await _run_logged(
                [str(_python(venv)), "-m", "pip", "install", "--no-input", "-r", str(spec.requirements)],
                log_path,
                phase="building",
                what="installing requirements.txt",
            )
        (venv / READY_MARK).write_text("ok\n")

    async def start(self, spec: DeploymentSpec, index: int, log_path: Path) -> InstanceHandle:
        port = find_free_port()
        env = instance_env(os.environ)
        env.update(
            PYTHONPATH=str(spec.app_dir),
            PYTHONUNBUFFERED="1",
            CHUTES_INSTANCE=str(index),
            CHUTES_SLUG=spec.slug,
        )
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            proc = await asyncio.create_subprocess_exec(
                str(_python(spec.directory / "venv")),
                "-m",
                serve_module(),
                spec.entrypoint,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                cwd=spec.app_dir,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self._procs[proc.pid] = proc
        return InstanceHandle(host="127.0.0.1", port=port, pid=proc.pid, native=proc)

    async def exit_code(self, handle: InstanceHandle) -> int | None:
        return handle.native.returncode

    async def stop(self, handle: InstanceHandle) -> None:
        proc: asyncio.subprocess.Process = handle.native
        self._procs.pop(proc.pid, None)
        if proc.returncode is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        _signal_group(proc.pid, signal.SIGCONT)  # a frozen (SIGSTOPped) instance must wake up to exit
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE)
        except TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def discard(self, spec: DeploymentSpec) -> None:
        return None

    async def aclose(self) -> None:
        for proc in list(self._procs.values()):
            await self.stop(InstanceHandle("127.0.0.1", 0, pid=proc.pid, native=proc))


def instance_env(host_env: Mapping[str, str]) -> dict[str, str]:
    """Returns the part of the host's environment an instance may see: no host secrets, no virtualenv."""
    return {k: v for k, v in host_env.items() if k in PASSED_ENV or k.startswith(PASSED_ENV_PREFIXES)}


def serve_module() -> str:
    """Returns the module that serves a chute: the runtime's `chutes.serve`, else uvicorn."""
    return "chutes.serve" if importlib.util.find_spec("chutes.serve") else "uvicorn"


def find_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _link_host_packages(venv: Path) -> None:
    """Makes the host's own site-packages (where the chutes runtime lives) visible in the venv.

    `--system-site-packages` only reaches the base interpreter's packages, not those of the
    virtualenv the host itself may run in, so a .pth file adds them, .pth files included.
    """
    dirs = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if os.path.isdir(p)]
    (target,) = (venv / "lib").glob("python*/site-packages")
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in dirs)
    (target / "_chutes_host_packages.pth").write_text(lines)


async def _run_logged(argv: list[str], log_path: Path, *, phase: str, what: str, cwd: Path | None = None) -> None:
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(argv)}\n".encode())
        log.flush()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # a pip build must not outlive a killed host
        )
        try:
            code = await proc.wait()
        except asyncio.CancelledError:  # the chute was deleted or the host is stopping: do not leave pip running
            proc.kill()
            await proc.wait()
            raise
    if code != 0:
        raise ExecutorError(f"{what} failed (exit code {code})", phase=phase, log_tail=read_tail(log_path))


def _die_with_parent() -> None:
    """Asks Linux to SIGTERM the child (instance or build) if the host dies, so no orphan lives on."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
