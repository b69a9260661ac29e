"""A real Kubernetes 1.20 for tests: etcd and kube-apiserver on this machine (`ApiServer`), and optionally a
cluster of two nodes (`Cluster`): controller-manager, scheduler, and per node a kubelet with its own dockerd in a
network namespace of ours, joined by a bridge. The binaries come from `bash .ci/k8s.sh` (CHUTES_K8S_BIN).

The machine forces a few things a normal cluster would not need; each is noted where it is done.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

TOKENS = {
    "admin": ("admin", "system:masters"),
    "host": ("chutes-host", ""),  # granted only the Role of deploy/kubernetes/rbac.yaml
    "nobody": ("nobody", ""),  # granted nothing
}
BRIDGE = "ck8s0"
BRIDGE_NET = "10.201.0"  # the bridge and the nodes' addresses
POD_NET = "10.202"  # node N's pods get 10.202.N.0/24
SERVICE_NET = "10.203.0.0/24"


class ClusterError(RuntimeError):
    """The cluster could not be had on this machine; the message says why."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _token(name: str) -> str:
    return f"chutes-test-{name}-token"


@dataclass
class ApiServer:
    """etcd and kube-apiserver, with token users `admin`, `host` and `nobody` (see TOKENS) and node users."""

    bin_dir: Path
    work: Path
    bind: str = "127.0.0.1"
    nodes: tuple[str, ...] = ()
    procs: list[subprocess.Popen] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"https://{self.bind}:{self.port}"

    def start(self) -> ApiServer:
        self.work.mkdir(parents=True, exist_ok=True)
        etcd_port, peer_port = free_port(), free_port()
        self.port = free_port(self.bind)
        self._spawn(
            "etcd",
            [
                shutil.which("etcd") or "etcd",
                "--data-dir", str(self.work / "etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
                "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
            ],
        )  # fmt: skip
        key = self.work / "sa.key"
        if not key.exists():
            subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        users = [(_token(k), name, k, group) for k, (name, group) in TOKENS.items()]
        users += [(_token(n), f"system:node:{n}", n, "system:nodes") for n in self.nodes]
        (self.work / "tokens.csv").write_text(
            "".join(f'{token},{name},{uid},"{group}"\n' for token, name, uid, group in users)
        )
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                "--etcd-servers", f"http://127.0.0.1:{etcd_port}",
                "--bind-address", self.bind,
                "--advertise-address", self.bind,
                "--secure-port", str(self.port),
                "--insecure-port", "0",
                "--cert-dir", str(self.work / "certs"),
                "--token-auth-file", str(self.work / "tokens.csv"),
                "--authorization-mode", "Node,RBAC",
                "--service-account-key-file", str(key),
                "--service-account-signing-key-file", str(key),
                "--service-account-issuer", "https://kubernetes.default.svc",
                "--service-cluster-ip-range", SERVICE_NET,
                "--endpoint-reconciler-type", "none",
                # the nodes are named n1, n2: the API server reaches their kubelets by address
                "--kubelet-preferred-address-types", "InternalIP",
                "--allow-privileged=false",
            ],
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self._check_alive()
            if self._healthy():
                return self
            time.sleep(0.2)
        raise ClusterError(f"kube-apiserver was not healthy within 60 s:\n{self.log_tail('kube-apiserver')}")

    def kubeconfig(self, user: str) -> Path:
        """Writes (once) and returns a kubeconfig for one of TOKENS' users (or a node name)."""
        path = self.work / f"kubeconfig-{user}.yaml"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.url, "insecure-skip-tls-verify": True}}],
            "users": [{"name": user, "user": {"token": _token(user)}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
            "current-context": "test",
        }
        path.write_text(json.dumps(config))
        return path

    def kubectl(self, *args: str, user: str = "admin", input: str | None = None, check: bool = True) -> str:
        """Runs kubectl as a user; returns its output."""
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig(user)), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _terminate(proc)
        self.procs.clear()

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.work / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _spawn(self, name: str, argv: list[str], *, netns: str | None = None) -> subprocess.Popen:
        if netns is not None:  # `ip netns exec` would hide the cgroup mounts the kubelet and dockerd need
            argv = ["nsenter", f"--net=/var/run/netns/{netns}", *argv]
        with open(self.work / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        proc.name = name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def _check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise ClusterError(f"{proc.name} exited with {proc.returncode}:\n{self.log_tail(proc.name)}")

    def _healthy(self) -> bool:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        request = urllib.request.Request(f"{self.url}/readyz", headers={"Authorization": f"Bearer {_token('admin')}"})
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
