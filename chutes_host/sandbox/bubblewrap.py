"""The sandbox: how one chute's code is confined on the host, with bubblewrap (`bwrap`).

Every step that runs tenant code (virtualenv, pip, the instance) goes through `Sandbox.wrap`:
own PID, mount, IPC, UTS and (unless allowed egress) network namespaces; a fresh /proc, a minimal
/dev, read-only system and Python directories, the chute's version directory (and a job's own
directory) the only writable place besides a private /tmp (also HOME). When the host runs as root
each deployment runs as its own uid/gid, allocated from a range and remembered in the data dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from chutes_host.config import DEFAULT_SANDBOX_UIDS
from chutes_host.errors import SandboxUnavailable

SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# What programs need from /etc: name resolution, CA certificates, time zone, the dynamic linker.
ETC_PATHS = (
    "/etc/alternatives",
    "/etc/ca-certificates",
    "/etc/gai.conf",
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/nsswitch.conf",
    "/etc/os-release",
    "/etc/protocols",
    "/etc/resolv.conf",
    "/etc/services",
    "/etc/ssl",
    "/etc/timezone",
)
INSTANCE_ENV = frozenset({"LANG", "TZ", "LD_LIBRARY_PATH"})
INSTANCE_ENV_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "HF_", "TORCH_")
BUILD_ENV = frozenset({"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"})
BUILD_ENV_PREFIXES = ("SSL_", "REQUESTS_CA_")  # never PIP_*: chutes_host.sandbox.pipconfig says why
# Run as the chute's uid, inside the sandbox: reads the whole environment from an inherited descriptor and
# starts the command with it, so no value of a tenant's is ever in the environment of bwrap or setpriv.
EXEC_WITH_ENV = """\
import os, sys
fd = int(sys.argv[1])
data = b"".join(iter(lambda: os.read(fd, 1 << 16), b""))
os.close(fd)
os.execve(sys.argv[3], sys.argv[3:], dict(item.split(b"=", 1) for item in data.split(b"\\0") if item))
"""
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|(^|_)(API_?)?KEY($|_)", re.IGNORECASE)
SANDBOX_UID_FILE = "uids.json"


class UidRegistry:
    """Gives each deployment slug its own uid from a range, remembered in a JSON file; never reused."""

    def __init__(self, path: Path, uids: range) -> None:
        self.path = path
        self.uids = uids
        self._assigned: dict[str, int] = json.loads(path.read_text()) if path.is_file() else {}

    def __repr__(self) -> str:
        return f"UidRegistry({self.path}, {self.uids.start}-{self.uids.stop - 1}, assigned={len(self._assigned)})"

    def uid_for(self, slug: str) -> int:
        """Returns the slug's uid, allocating the next free one (and saving) the first time."""
        uid = self._assigned.get(slug)
        if uid is not None:
            return uid
        uid = max(self._assigned.values(), default=self.uids.start - 1) + 1
        if uid not in self.uids:
            raise SandboxUnavailable(
                f"every sandbox uid of {self.uids.start}-{self.uids.stop - 1} is taken; "
                "give the host a larger range with --sandbox-uids"
            )
        self._assigned[slug] = uid
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".uids-")
        with open(fd, "w") as f:
            json.dump(self._assigned, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)
        return uid


class Sandbox:
    """Wraps commands in bubblewrap so they see only their own directory, processes and network.

    sandbox = Sandbox.detect(data_dir)   # raises SandboxUnavailable, saying why
    argv = sandbox.wrap([python, "-m", "chutes.serve", ...], directory=version_dir, uid=uid, network=False)
    """

    def __init__(
        self, bwrap: str, *, data_dir: Path, uids: range = DEFAULT_SANDBOX_UIDS, setpriv: str | None = None
    ) -> None:
        self.bwrap = bwrap
        self.data_dir = data_dir
        self.as_root = os.geteuid() == 0
        self.setpriv = setpriv
        state = data_dir / "sandbox"
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state_dir = state
        self.uids = UidRegistry(state / SANDBOX_UID_FILE, uids) if self.as_root else None
        self.read_only = read_only_paths()

    def __repr__(self) -> str:
        who = "a uid per chute" if self.as_root else "the host's uid in a user namespace"
        return f"Sandbox({self.bwrap}, {who})"

    @classmethod
    def detect(cls, data_dir: Path, *, uids: range = DEFAULT_SANDBOX_UIDS) -> Sandbox:
        """Returns a sandbox that was tried once with the Python runtime, or raises SandboxUnavailable."""
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailable("bubblewrap is not installed (no `bwrap` on PATH); install the package bubblewrap")
        setpriv = shutil.which("setpriv")
        if os.geteuid() == 0 and setpriv is None:
            raise SandboxUnavailable("`setpriv` (util-linux) is missing; it switches each chute to its own uid")
        sandbox = cls(bwrap, data_dir=data_dir, uids=uids, setpriv=setpriv)
        sandbox.probe()
        return sandbox

    def uid_for(self, slug: str) -> int | None:
        """Returns the uid the slug's code runs as (None when the host is not root: its own uid)."""
        return self.uids.uid_for(slug) if self.uids is not None else None

    def probe(self) -> None:
        """Runs the runtime's Python inside a throwaway sandbox; raises SandboxUnavailable if that fails."""
        with tempfile.TemporaryDirectory(dir=self.state_dir, prefix="probe-") as tmp:
            directory = Path(tmp)
            uid = self.uids.uids.start if self.uids is not None else None
            if uid is not None:
                os.chown(directory, uid, uid)
            argv = self.wrap([sys.executable, "-c", "import chutes.serve"], directory=directory, uid=uid, network=False)
            try:
                done = subprocess.run(argv, env=sandbox_env(os.environ), capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SandboxUnavailable(f"bubblewrap could not run: {exc}") from None
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise SandboxUnavailable(
                f"bubblewrap cannot build a sandbox here ({reason}); it needs user namespaces "
                "(sysctl kernel.unprivileged_userns_clone=1) or a host running as root"
            )

    def wrap(
        self,
        argv: Sequence[str],
        *,
        directory: Path,
        uid: int | None,
        network: bool,
        cwd: Path | None = None,
        read_only: Iterable[str] = (),
        devices: Iterable[str] = (),
        writable: Iterable[str] = (),
        env_fd: int | None = None,
    ) -> list[str]:
        """Takes a command, and returns it wrapped to run confined to `directory` (read-write).

        `network` shares the host's network (else only a private loopback); `read_only` adds paths
        (e.g. a build's local index); `devices` are device nodes to pass through (GPUs);
        `writable` are more directories it may write, at the same paths (a job's directory);
        `env_fd` is a descriptor (see `env_file`) whose environment the command gets, once confined.
        """
        args = [self.bwrap, "--die-with-parent", "--new-session", "--as-pid-1"]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if not self.as_root:
            args.append("--unshare-user")
        if not network:
            args.append("--unshare-net")
        mounts = _Mounts(args)
        for path in SYSTEM_DIRS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                mounts.add("--ro-bind", path)
        # the fresh mounts first, so binds below them (e.g. a Python install under /tmp) stay visible
        args += ["--proc", "/proc", "--dev", "/dev", "--hostname", "chute"]
        mounts.add("--tmpfs", "/dev/shm", perms="1777")  # POSIX semaphores (multiprocessing, data loaders)
        mounts.add("--tmpfs", "/tmp", perms="1777")
        read_only = _outermost([*self.read_only, *read_only])
        for path in read_only:
            mounts.add("--ro-bind", path)
        if any(_is_within(str(self.data_dir), path) for path in [*SYSTEM_DIRS, *read_only]):
            mounts.add("--tmpfs", str(self.data_dir), perms="0755")  # never expose it through a read-only path
        mounts.add("--ro-bind", str(self._passwd(uid)), "/etc/passwd")
        mounts.add("--ro-bind", str(self._group(uid)), "/etc/group")
        if os.path.isdir("/sys/devices/system/cpu"):  # CPU counts (os.sched_getaffinity falls back to it)
            mounts.add("--ro-bind", "/sys/devices/system/cpu")
        for device in devices:
            mounts.add("--dev-bind", device)
        mounts.add("--bind", str(directory))
        for path in writable:
            mounts.add("--bind", str(path))
        args += ["--chdir", str(cwd or directory)]
        if self.as_root and uid is not None:
            args += ["--cap-add", "CAP_SETUID,CAP_SETGID", "--", self.setpriv, f"--reuid={uid}", f"--regid={uid}"]
            args += ["--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        if env_fd is not None:
            argv = [sys.executable, "-I", "-S", "-c", EXEC_WITH_ENV, str(env_fd), "--", *argv]
        return [*args, "--", *argv]

    def _passwd(self, uid: int | None) -> Path:
        uid = os.geteuid() if uid is None else uid
        return _write_once(self.state_dir / f"passwd-{uid}", f"chute:x:{uid}:{uid}:chute:/tmp:/usr/sbin/nologin\n")

    def _group(self, uid: int | None) -> Path:
        uid = os.geteuid() if uid is None else uid
        return _write_once(self.state_dir / f"group-{uid}", f"chute:x:{uid}:\n")


class _Mounts:
    """Adds bwrap mounts to an argument list, first making each missing parent directory world-readable
    (bwrap would make it 0700, which a chute's uid could not enter)."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.dirs: set[str] = {"/"}
        self.binds: list[str] = []

    def add(self, kind: str, source: str, dest: str | None = None, *, perms: str | None = None) -> None:
        dest = dest or source
        for parent in map(str, reversed(Path(dest).parents)):
            if parent in self.dirs or any(_is_within(parent, bound) for bound in self.binds):
                continue
            self.args += ["--perms", "0755", "--dir", parent]
            self.dirs.add(parent)
        if perms is not None:
            self.args += ["--perms", perms]
        self.args += [kind, dest] if kind == "--tmpfs" else [kind, source, dest]
        if kind == "--tmpfs":
            self.dirs.add(dest)
        else:
            self.binds.append(dest)


def read_only_paths() -> list[str]:
    """Returns what a chute reads but never writes: /etc essentials and the Python the runtime runs on."""
    import chutes

    paths = [p for p in ETC_PATHS if os.path.exists(p)]
    python = {sys.base_prefix, sys.prefix, *site.getsitepackages(), site.getusersitepackages()}
    python.add(str(Path(chutes.__file__).resolve().parent))  # an editable install keeps it outside site-packages
    paths += [p for p in python if os.path.isdir(p) and p != "/"]
    return paths


def sandbox_env(host_env: Mapping[str, str], *, build: bool = False, network: bool = False) -> dict[str, str]:
    """Returns the environment of confined code: locale and GPU settings, never a host secret.

    A build also gets the host's CA settings and, with `network`, the proxy settings.
    """

    def passed(name: str) -> bool:
        if SECRET_NAME.search(name):
            return False
        if name in INSTANCE_ENV or name.startswith(INSTANCE_ENV_PREFIXES):
            return True
        if build and name.startswith(BUILD_ENV_PREFIXES):
            return True
        return network and name in BUILD_ENV

    env = {k: v for k, v in host_env.items() if passed(k)}
    env.update(PATH=SANDBOX_PATH, HOME="/tmp", TMPDIR="/tmp", USER="chute")
    return env


def env_file(env: Mapping[str, str]) -> int:
    """Takes an environment, and returns a descriptor (an anonymous file at offset 0) for `wrap`'s `env_fd`.

    Raises ValueError on a name or value that no environment can hold (with '=' in a name, or a NUL).
    """
    for name, value in env.items():
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise ValueError(f"environment variable {name!r} cannot be passed: its name or value is malformed")
    data = memoryview(b"".join(f"{name}={value}\0".encode() for name, value in env.items()))
    fd = os.memfd_create("chute-env", os.MFD_CLOEXEC)
    try:
        while data:
            data = data[os.write(fd, data) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def nvidia_devices(gpus: Iterable[str | int], *, dev: Path = Path("/dev"), driver: Path | None = None) -> list[str]:
    """Takes GPU indices or UUIDs, and returns the device nodes a chute needs for exactly those GPUs.

    The shared control nodes (/dev/nvidiactl, /dev/nvidia-uvm*) come only when a GPU is asked for
    and present; a UUID is found through the driver's /proc/driver/nvidia/gpus/*/information.
    """
    wanted = [str(g).strip() for g in gpus if str(g).strip()]
    if not wanted:
        return []
    driver = driver or Path("/proc/driver/nvidia/gpus")
    minors = _uuid_minors(driver)
    nodes = [dev / "nvidiactl", dev / "nvidia-uvm", dev / "nvidia-uvm-tools"]
    for gpu in wanted:
        minor = gpu if gpu.isdigit() else minors.get(gpu.removeprefix("GPU-").lower())
        if minor is None:
            raise SandboxUnavailable(f"no GPU with UUID {gpu!r} on this host; check the GPU placement")
        nodes.append(dev / f"nvidia{minor}")
    return [str(node) for node in nodes if node.exists()]


def own_directory(directory: Path, uid: int) -> None:
    """Gives a freshly unpacked version directory to its chute's uid; symbolic links are not followed."""
    if directory.lstat().st_uid == uid:
        return
    for root, dirs, files in os.walk(directory):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)
    os.chown(directory, uid, uid, follow_symlinks=False)
    directory.chmod(0o700)


def _uuid_minors(driver: Path) -> dict[str, str]:
    minors = {}
    for info in driver.glob("*/information"):
        fields = dict(line.split(":", 1) for line in info.read_text(errors="replace").splitlines() if ":" in line)
        uuid = fields.get("GPU UUID", "").strip().removeprefix("GPU-").lower()
        minor = fields.get("Device Minor", "").strip()
        if uuid and minor.isdigit():
            minors[uuid] = minor
    return minors


def _write_once(path: Path, text: str) -> Path:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
        path.chmod(0o644)
    return path


def _is_within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _outermost(paths: Iterable[str]) -> list[str]:
    """Returns the paths without those inside another one (binding both would hide nothing, but costs)."""
    kept: list[str] = []
    for path in sorted({os.path.normpath(p) for p in paths}, key=len):
        if not any(_is_within(path, k) for k in kept):
            kept.append(path)
    return kept
