"""The process executor: each instance is `python -m chutes.serve` in the version's own virtualenv,
confined by the host's sandbox and served on a Unix socket that only the host reaches."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import importlib.util
import json
import os
import signal
import site
import socket
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from chutes_host.deploy.spec import DeploymentSpec
from chutes_host.executors.base import Capabilities, ExecutorError, InstanceHandle, Isolation
from chutes_host.gateway.handoff import HandoffChannel, socket_pair
from chutes_host.jobs.launch import JobLaunch
from chutes_host.observability.logs import read_tail
from chutes_host.sandbox.bubblewrap import (
    SANDBOX_PATH,
    SECRET_NAME,
    Sandbox,
    SandboxUnavailable,
    env_file,
    nvidia_devices,
    own_directory,
    sandbox_env,
)
from chutes_host.sandbox.pipconfig import IndexUrlError, build_pip_env, build_read_only, check_index_url
from chutes_host.sandbox.tenantfiles import TenantFileError, is_regular, read_regular, replace_file
from chutes_host.scheduling.gpus import Gpu, gpu_env

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
PASSED_ENV_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "HF_", "TORCH_", "SSL_", "REQUESTS_CA_", "XDG_")
STOP_GRACE = 5.0
MAX_REQUIREMENTS = 1024 * 1024
# Sockets live in a directory of the host's own; sun_path holds 108 bytes.
MAX_SOCKET_PATH = 100
# Creates the virtualenv and makes the host's site-packages (where the runtime lives) visible in it:
# `--system-site-packages` only reaches the base interpreter's packages, not those of the virtualenv
# the host may run in. It runs as the chute (sandboxed), so it never writes through a chute's symlink.
MAKE_VENV = """\
import sys, venv
from pathlib import Path
target = Path(sys.argv[1])
venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(target)
(site_packages,) = (target / "lib").glob("python*/site-packages")
lines = "".join(f"import site; site.addsitedir({d!r})\\n" for d in sys.argv[2:])
(site_packages / "_chutes_host_packages.pth").write_text(lines)
"""


class ProcessExecutor:
    """Runs instances as sandboxed subprocesses, each on its own Unix socket; the zero-dependency default."""

    name = "process"
    capabilities = Capabilities(runs_jobs=True)

    def __init__(self, config) -> None:
        self.config = config
        self._handles: dict[int, InstanceHandle] = {}
        self._lifelines: dict[int, int] = {}  # bwrap's (or the instance's) pid -> the pipe end the host holds
        self._owners: dict[tuple[str, int], int] = {}
        self.sandbox: Sandbox | None = None
        self.unsandboxed_reason: str | None = None
        mode = getattr(config, "sandbox", "auto")
        if mode == "off":
            self.unsandboxed_reason = "the sandbox was turned off (--sandbox off)"
        else:
            try:
                self.sandbox = Sandbox.detect(config.data_dir, uids=config.sandbox_uids)
            except SandboxUnavailable as exc:
                if mode == "bwrap":
                    raise ExecutorError(f"cannot sandbox chutes: {exc}", phase="starting") from None
                self.unsandboxed_reason = str(exc)
        self.run_dir = socket_dir(config.data_dir)
        try:
            self.build_index = check_index_url(getattr(config, "build_index_url", None))
        except IndexUrlError as exc:
            raise ExecutorError(str(exc), phase="starting") from None

    def describe_isolation(self) -> Isolation:
        """Returns one line for the host's start: how chutes are confined, or what is given up."""
        if self.sandbox is not None:
            who = "its own uid" if self.sandbox.as_root else "the host's uid in a user namespace"
            return Isolation(f"process executor: every chute runs sandboxed by bubblewrap, as {who}", sandboxed=True)
        given_up = (
            f"process executor WITHOUT a sandbox ({self.unsandboxed_reason}): chutes run as the host's user, "
            "can read its environment, database and every other chute's files, and reach each other"
        )
        if self.config.unsafe_shared_process:
            return Isolation(given_up + "; --unsafe-shared-process lets several users deploy anyway", sandboxed=False)
        one_user = "; so only one user may deploy (start with --unsafe-shared-process to allow more)"
        return Isolation(given_up + one_user, sandboxed=False)

    def image_repositories(self, slug: str) -> None:
        return None  # chutes run from virtualenvs, not images

    async def prepare(self, spec: DeploymentSpec, log_path: Path) -> None:
        self._check_single_user(spec)
        self._owners[(spec.slug, spec.version)] = spec.owner_id
        uid = self._uid(spec)
        if uid is not None:
            own_directory(spec.directory, uid)
        venv = spec.directory / "venv"
        if is_regular(spec.directory, f"venv/{READY_MARK}"):  # a FIFO or a link the chute made is no mark
            return
        log_path.parent.mkdir(parents=True, exist_ok=True)
        host_dirs = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if os.path.isdir(p)]
        await self._run_step(
            spec,
            [sys.executable, "-I", "-c", MAKE_VENV, str(venv), *host_dirs],  # -I: no module of the chute's directory
            log_path,
            what="creating the virtualenv",
            shown=[sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
        )
        if await asyncio.to_thread(_has_requirements, spec):
            await self._run_step(
                spec,
                [str(_python(venv)), "-m", "pip", "install", "--no-input", "-r", str(spec.requirements)],
                log_path,
                what="installing requirements.txt",
                network=True,
                cwd=spec.app_dir,  # as on the author's machine: relative paths are the project's
            )
        await asyncio.to_thread(_mark_ready, spec)

    async def start(
        self,
        spec: DeploymentSpec,
        index: int,
        log_path: Path,
        *,
        gpus: Sequence[Gpu] = (),
        job: JobLaunch | None = None,
    ) -> InstanceHandle:
        """Starts instance number index; with `job`, an instance that runs that job once and serves its ports."""
        path = self._socket_path(spec, index) if job is None else self.run_dir / f"job-{job.short}.sock"
        listener = _listen_unix(path)
        argv = [str(_python(spec.directory / "venv")), "-m", serve_module(), spec.entrypoint]
        if job is not None:
            argv[2:] = ["chutes.jobrun", spec.entrypoint, job.name, "--dir", str(job.work_dir), "--id", job.id]
            uid = self._uid(spec)
            if uid is not None:
                own_directory(job.work_dir, uid)
        # the instance exits when this pipe closes: when the host dies, even by SIGKILL
        life_read, life_write = os.pipe()
        argv += ["--fd", str(listener.fileno()), "--lifeline", str(life_read)]
        info_read, info_write = os.pipe()
        pass_fds = [listener.fileno(), life_read]
        handing = argv[2] == "chutes.serve" and getattr(self.config, "stream_handoff", False)  # not a job, nor uvicorn
        handoff = socket_pair() if handing else None
        if handoff is not None:
            argv += ["--handoff", str(handoff[1].fileno())]
            pass_fds.append(handoff[1].fileno())
        env = sandbox_env(os.environ, network=self._egress(spec)) if self.sandbox else instance_env(os.environ)
        env.update(spec.env)  # the chute's own secrets
        env.update(PYTHONPATH=str(spec.app_dir), PYTHONUNBUFFERED="1", CHUTES_INSTANCE=str(index))
        env["CHUTES_SLUG"] = spec.slug
        env.update(gpu_env(gpus))  # last, so that nothing set before (a secret, say) can widen what it sees
        env_fd = None
        if self.sandbox is not None:
            # bwrap and setpriv run privileged: the chute's values reach its own process only, by descriptor
            uid, devices = self._uid(spec), self._devices(gpus)
            env_fd = _env_file(env)
            argv = self.sandbox.wrap(
                argv,
                directory=spec.directory,
                cwd=spec.app_dir,
                uid=uid,
                network=self._egress(spec),
                devices=devices,
                writable=[str(job.work_dir)] if job is not None else (),
                env_fd=env_fd,
            )
            argv[1:1] = ["--info-fd", str(info_write)]
            pass_fds += [info_write, env_fd]
            env = {"PATH": SANDBOX_PATH}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(log_path, "ab") as out:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=spec.app_dir,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=pass_fds,
                    preexec_fn=_die_with_parent,
                )
        except BaseException:
            os.close(info_read)
            os.close(life_write)
            if handoff is not None:
                handoff[0].close()
            raise
        finally:
            listener.close()  # the instance holds it now; once it exits, connecting fails at once
            os.close(info_write)
            os.close(life_read)
            if env_fd is not None:
                os.close(env_fd)
            if handoff is not None:
                handoff[1].close()
        self._lifelines[proc.pid] = life_write
        try:
            pid = await _read_child_pid(info_read) if self.sandbox is not None else proc.pid
        finally:
            os.close(info_read)
        handle = InstanceHandle(host="localhost", port=0, pid=pid or proc.pid, native=proc, uds=str(path))
        if handoff is not None:
            handle.handoff = HandoffChannel(handoff[0], asyncio.get_running_loop())
        self._handles[proc.pid] = handle
        return handle

    async def exit_code(self, handle: InstanceHandle) -> int | None:
        code = handle.native.returncode
        if code is not None:
            self._close_lifeline(handle.native.pid)
        if code is not None and self.sandbox is not None and 128 < code < 160:
            return 128 - code  # bwrap reports a child killed by signal N as 128+N; say -N as subprocess does
        return code

    async def stop(self, handle: InstanceHandle) -> None:
        proc: asyncio.subprocess.Process = handle.native
        self._handles.pop(proc.pid, None)
        if proc.returncode is None:
            # Only the server itself: bwrap would die of SIGTERM and take the server down without its shutdown hooks.
            _signal_group(handle.pid, signal.SIGTERM)
            _signal_group(handle.pid, signal.SIGCONT)  # a frozen (SIGSTOPped) instance must wake up to exit
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                for pid in {handle.pid, proc.pid}:
                    _signal_group(pid, signal.SIGKILL)
                await proc.wait()
        self._close_lifeline(proc.pid)
        if handle.handoff is not None:
            handle.handoff.close()
        if handle.uds:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(handle.uds)

    def _close_lifeline(self, pid: int) -> None:
        fd = self._lifelines.pop(pid, None)
        if fd is not None:
            os.close(fd)

    async def discard(self, spec: DeploymentSpec) -> None:
        self._owners.pop((spec.slug, spec.version), None)

    async def aclose(self) -> None:
        for handle in list(self._handles.values()):
            await self.stop(handle)

    def _check_single_user(self, spec: DeploymentSpec) -> None:
        if self.sandbox is not None or self.config.unsafe_shared_process:
            return
        others = {owner for owner in self._owners.values() if owner != spec.owner_id}
        if others:
            raise ExecutorError(
                f"this host runs chutes without a sandbox ({self.unsandboxed_reason}), so it serves one user's "
                "chutes only and another user's are running; the operator can install bubblewrap, or accept "
                "that users can reach each other with `chutes host serve --unsafe-shared-process`",
                phase="building",
            )

    def _uid(self, spec: DeploymentSpec) -> int | None:
        if self.sandbox is None:
            return None
        try:
            return self.sandbox.uid_for(spec.slug)
        except SandboxUnavailable as exc:
            raise ExecutorError(str(exc), phase="building") from None

    def _egress(self, spec: DeploymentSpec) -> bool:
        return bool(spec.manifest.get("allow_external_egress", False))

    def _devices(self, gpus: Sequence[Gpu]) -> list[str]:
        try:
            return nvidia_devices(g.index for g in gpus)
        except SandboxUnavailable as exc:
            raise ExecutorError(str(exc), phase="starting") from None

    def _socket_path(self, spec: DeploymentSpec, index: int) -> Path:
        name = hashlib.sha256(f"{spec.slug}/{spec.version}/{index}".encode()).hexdigest()[:20]
        return self.run_dir / f"{name}.sock"

    async def _run_step(
        self,
        spec: DeploymentSpec,
        argv: list[str],
        log_path: Path,
        *,
        what: str,
        network: bool = False,
        shown: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        env = sandbox_env(os.environ, build=True, network=network)
        env.update(build_pip_env(self.build_index))  # no pip configuration of the host's: chutes_host.sandbox.pipconfig
        inner = argv
        if self.sandbox is not None:
            read_only = build_read_only(os.environ, self.build_index) if network else []
            argv = self.sandbox.wrap(
                argv, directory=spec.directory, uid=self._uid(spec), network=network, read_only=read_only, cwd=cwd
            )
        else:  # its own user's PATH, HOME (pip's cache) and TMPDIR, as before the sandbox existed
            env.update({k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ})
            env.pop("TMPDIR", None)
        await _run_logged(argv, log_path, phase="building", what=what, env=env, shown=shown or inner, cwd=cwd)


def instance_env(host_env: Mapping[str, str]) -> dict[str, str]:
    """Returns the part of the host's environment an unsandboxed instance may see: no host secrets."""
    return {
        k: v
        for k, v in host_env.items()
        if (k in PASSED_ENV or k.startswith(PASSED_ENV_PREFIXES)) and not SECRET_NAME.search(k)
    }


def _env_file(env: Mapping[str, str]) -> int:
    try:
        return env_file(env)
    except ValueError as exc:
        raise ExecutorError(f"{exc}; set the chute's secrets again", phase="starting") from None


def serve_module() -> str:
    """Returns the module that serves a chute: the runtime's `chutes.serve`, else uvicorn."""
    return "chutes.serve" if importlib.util.find_spec("chutes.serve") else "uvicorn"


def find_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def socket_dir(data_dir: Path) -> Path:
    """Returns the host-only directory of instance sockets (a short private one if the data dir is deep)."""
    run = data_dir / "run"
    if len(str(run)) + 26 > MAX_SOCKET_PATH:
        return Path(tempfile.mkdtemp(prefix="chutes-run-"))
    run.mkdir(mode=0o700, parents=True, exist_ok=True)
    run.chmod(0o700)
    return run


def _listen_unix(path: Path) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ExecutorError(f"cannot listen on {path}: {exc.strerror}", phase="starting") from None
    return sock


async def _read_child_pid(fd: int) -> int | None:
    """Reads bwrap's --info-fd JSON; returns the host pid of the sandboxed process (None if bwrap failed)."""
    data = await asyncio.to_thread(_read_all, fd)
    try:
        return int(json.loads(data)["child-pid"])
    except (ValueError, KeyError, TypeError):
        return None


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def _has_requirements(spec: DeploymentSpec) -> bool:
    """Says whether requirements.txt has content; raises ExecutorError when the chute made it anything
    but a regular file (a FIFO would block pip, and the host, for ever)."""
    try:
        return bool(read_regular(spec.directory, "requirements.txt", limit=MAX_REQUIREMENTS).strip())
    except FileNotFoundError:
        return False
    except TenantFileError as exc:
        raise ExecutorError(
            f"{exc}; the virtualenv of {spec.slug} version {spec.version} is made again from it because its "
            "ready mark is gone: make requirements.txt a regular file again, or deploy again",
            phase="building",
        ) from None


def _mark_ready(spec: DeploymentSpec) -> None:
    """Writes the virtualenv's ready mark in place of whatever the chute left there, never through a link."""
    try:
        replace_file(spec.directory, f"venv/{READY_MARK}", b"ok\n")
    except (OSError, TenantFileError) as exc:
        raise ExecutorError(f"cannot mark the virtualenv of {spec.slug} ready: {exc}", phase="building") from None


async def _run_logged(
    argv: list[str],
    log_path: Path,
    *,
    phase: str,
    what: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    shown: list[str] | None = None,
) -> None:
    with open(log_path, "ab") as out:
        out.write(f"$ {' '.join(shown or argv)}\n".encode())
        out.flush()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # a pip build must not outlive a killed host
        )
        try:
            code = await proc.wait()
        except asyncio.CancelledError:  # the chute was deleted or the host is stopping: do not leave pip running
            _signal_group(proc.pid, signal.SIGKILL)
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


def _signal_group(pid: int | None, sig: int) -> None:
    if pid is None:
        return
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
