"""A real Kubernetes 1.20 for tests: etcd and kube-apiserver on this machine (`ApiServer`), and optionally a
cluster of two nodes (`Cluster`): controller-manager, scheduler, and per node a kubelet with its own dockerd in a
network namespace of ours, joined by a bridge. The binaries come from `bash .ci/k8s.sh` (CHUTES_K8S_BIN).

The machine forces a few things a normal cluster would not need; each is noted where it is done.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Iterator
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
FORWARD_RULE = ("-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT")
CGROUPS = Path("/sys/fs/cgroup")


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
                # in a cluster, the `kubernetes` Service's endpoint is the API server's bridge address: pods reach
                # it through kube-proxy with their service account; on 127.0.0.1 alone there are no pods
                "--endpoint-reconciler-type", "none" if self.bind.startswith("127.") else "lease",
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

    @contextlib.contextmanager
    def paused(self, name: str) -> Iterator[None]:
        """Stops one of the daemons (SIGSTOP) for the block, as a machine too loaded to run it would."""
        (proc,) = [p for p in self.procs if p.name == name]  # type: ignore[attr-defined]
        os.killpg(proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(proc.pid, signal.SIGCONT)

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


PAUSE_GO = """package main

import (
	"os"
	"os/signal"
	"syscall"
)

// The pod sandbox: holds the pod's namespaces until told to stop.
func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
"""
PAUSE_IMAGE = "localhost/chutes-pause:1"
POD_LOGS = "/var/log/pods"
# run in a kubelet's own mount namespace: its own pod log directory ($0) over /var/log/pods, then the kubelet
OWN_POD_LOGS = 'mount --bind "$0" /var/log/pods && exec "$@"'
# Root here may not set a negative OOM score, which the kubelet gives pod sandboxes: clamp it, then run runc.
RUNC_CLAMP = """#!/bin/sh
prev=""
bundle=""
for arg in "$@"; do
    if [ "$prev" = "--bundle" ] || [ "$prev" = "-b" ]; then bundle=$arg; fi
    case $arg in --bundle=*) bundle=${arg#--bundle=} ;; esac
    prev=$arg
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
    jq -c 'if (.process.oomScoreAdj // 0) < 0 then .process.oomScoreAdj = 0 else . end' "$bundle/config.json" \\
        >"$bundle/config.json.clamped" && mv "$bundle/config.json.clamped" "$bundle/config.json"
fi
exec runc "$@"
"""


@dataclass
class Node:
    """One node: a network namespace on the bridge, its own dockerd, and a kubelet."""

    name: str
    number: int
    gpus: int
    product: str = "NVIDIA-L4"
    memory_mib: int = 23034

    @property
    def netns(self) -> str:
        return f"ck8s-{self.name}"

    @property
    def address(self) -> str:
        return f"{BRIDGE_NET}.{10 + self.number}"

    @property
    def pod_net(self) -> str:
        return f"{POD_NET}.{self.number}.0/24"


class Cluster:
    """A two-node cluster on this machine (root only): nodes `n1` and `n2` in network namespaces joined by the
    bridge BRIDGE, with the API server on the bridge's address. The root namespace routes to each node's pod
    network, so a host run here reaches pod IPs as it would inside a cluster."""

    def __init__(self, bin_dir: Path, work: Path, cache: Path, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.work = work
        self.cache = cache  # node engines' data (the images loaded into them) survive between runs
        self.api = ApiServer(bin_dir, work, bind=f"{BRIDGE_NET}.1", nodes=tuple(n.name for n in nodes))
        self.bin_dir = bin_dir

    def start(self, images: list[str], *, engine_host: str) -> Cluster:
        """Starts everything, loads `images` from the engine at `engine_host` into each node, and waits until
        the nodes are Ready and advertise their fake GPUs."""
        if os.geteuid() != 0:
            raise ClusterError("a cluster needs root (network namespaces, dockerd, kubelet)")
        self.work.mkdir(parents=True, exist_ok=True)
        self._teardown_network()
        self._make_network()
        self.api.start()
        admin = str(self.api.kubeconfig("admin"))
        key = str(self.work / "sa.key")
        bins = self.bin_dir
        self.api._spawn(
            "kube-controller-manager",
            [str(bins / "kube-controller-manager"), "--kubeconfig", admin, "--leader-elect=false",
             "--service-account-private-key-file", key, "--root-ca-file", str(self.work / "certs" / "apiserver.crt"),
             "--port=0", "--secure-port=0", "--controllers=*,-nodeipam,-cloud-node-lifecycle",
             "--node-monitor-grace-period=20s", "--pod-eviction-timeout=30s"],
        )  # fmt: skip
        self.api._spawn(
            "kube-scheduler",
            [str(bins / "kube-scheduler"), "--kubeconfig", admin, "--leader-elect=false", "--port=0",
             "--secure-port=0"],
        )  # fmt: skip
        runtime = self.cache / "runc-clamp"
        self.cache.mkdir(parents=True, exist_ok=True)
        runtime.write_text(RUNC_CLAMP)
        runtime.chmod(0o755)
        for node in self.nodes:
            self._start_engine(node, runtime)
        pause = self._pause_tarball()
        for node in self.nodes:
            self._load_images(node, images, pause, engine_host)
            self._start_kubelet(node)
            self._start_proxy(node)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self.api._check_alive()
            ready = self.api.kubectl(
                "get", "nodes", "-o",
                'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}',
                check=False,
            )  # fmt: skip
            if sorted(ready.split()) == sorted(f"{n.name}=True" for n in self.nodes):
                break
            time.sleep(0.5)
        else:
            raise ClusterError(f"the nodes were not Ready within 120 s: {ready!r}\n{self.api.log_tail('kubelet-n1')}")
        for node in self.nodes:
            self.advertise_gpus(node)
        return self

    def advertise_gpus(self, node: Node) -> None:
        """Patches the node's capacity with its fake GPUs, as NVIDIA's device plugin would report real ones."""
        patch = json.dumps([{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": str(node.gpus)}])
        self._api_request("PATCH", f"/api/v1/nodes/{node.name}/status", patch, "application/json-patch+json")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = self.api.kubectl("get", "node", node.name, "-o", r"jsonpath={.status.allocatable.nvidia\.com/gpu}")
            if got == str(node.gpus):
                return
            time.sleep(0.2)
        raise ClusterError(f"node {node.name} did not show {node.gpus} allocatable GPUs")

    def docker(self, node: Node, *args: str, input: bytes | None = None) -> bytes:
        """Runs the docker CLI against one node's engine."""
        result = subprocess.run(
            ["docker", "-H", f"unix://{self._sock(node)}", *args], input=input, capture_output=True, timeout=300
        )
        if result.returncode != 0:
            raise ClusterError(f"docker {' '.join(args)} on {node.name} failed: {result.stderr.decode()[-2000:]}")
        return result.stdout

    def engine(self, node: Node) -> str:
        """The node's docker engine, as a DOCKER_HOST."""
        return f"unix://{self._sock(node)}"

    def in_node(self, node: Node, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """Runs a command in the node's network namespace (where kube-proxy's rules make ClusterIPs answer)."""
        return subprocess.run(
            ["nsenter", f"--net=/var/run/netns/{node.netns}", *argv], capture_output=True, text=True, timeout=timeout
        )

    def stop(self) -> None:
        for node in self.nodes:  # the kubelets' pods go with their engines
            with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
                ids = self.docker(node, "ps", "-aq").split()
                if ids:
                    self.docker(node, "rm", "-f", *[i.decode() for i in ids])
        self.api.stop()
        self._teardown_network()
        self._remove_cgroups()
        _unmount_under(self.work)  # the kubelet bind-mounts its root dir (and pods' volumes) there
        subprocess.run(["umount", "-l", POD_LOGS], capture_output=True)  # the private mount _start_kubelet made

    def _api_request(self, method: str, path: str, body: str, content_type: str) -> None:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        request = urllib.request.Request(
            self.api.url + path,
            data=body.encode(),
            method=method,
            headers={"Authorization": f"Bearer {_token('admin')}", "Content-Type": content_type},
        )
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:
            resp.read()

    def _make_network(self) -> None:
        run = _run
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{BRIDGE_NET}.1/24", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")
        # a container engine on this machine may set FORWARD's policy to DROP, and with br_netfilter that also
        # drops frames between two nodes on the bridge (pod to pod across nodes): let the bridge's own through
        run("iptables", "-I", "FORWARD", "1", *FORWARD_RULE)
        for node in self.nodes:
            ns = node.netns
            run("ip", "netns", "add", ns)
            run("ip", "link", "add", f"{ns}h", "type", "veth", "peer", "name", "eth0", "netns", ns)
            run("ip", "link", "set", f"{ns}h", "master", BRIDGE, "up")
            inside = ["nsenter", f"--net=/var/run/netns/{ns}"]
            run(*inside, "ip", "addr", "add", f"{node.address}/24", "dev", "eth0")
            run(*inside, "ip", "link", "set", "eth0", "up")
            run(*inside, "ip", "link", "set", "lo", "up")
            run(*inside, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            # the nodes' own processes reach ClusterIPs: kube-proxy rewrites them once they are routed out
            run(*inside, "ip", "route", "add", SERVICE_NET, "dev", "eth0")
            run("ip", "route", "add", node.pod_net, "via", node.address)
            for other in self.nodes:
                if other is not node:
                    run(*inside, "ip", "route", "add", other.pod_net, "via", other.address)

    def _teardown_network(self) -> None:
        for node in self.nodes:
            subprocess.run(["ip", "route", "del", node.pod_net], capture_output=True)
            subprocess.run(["ip", "netns", "del", node.netns], capture_output=True)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        while subprocess.run(["iptables", "-D", "FORWARD", *FORWARD_RULE], capture_output=True).returncode == 0:
            pass

    def _sock(self, node: Node) -> Path:
        return Path(f"/tmp/ck8s-{node.name}/docker.sock")  # a short path: Unix socket paths are limited

    def _start_engine(self, node: Node, runtime: Path) -> None:
        root = self._sock(node).parent
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        self.api._spawn(
            f"dockerd-{node.name}",
            ["dockerd", "--data-root", str(self.cache / node.name / "docker"), "--exec-root", str(root / "exec"),
             "-H", f"unix://{self._sock(node)}", "--pidfile", str(root / "dockerd.pid"),
             "--bip", f"{POD_NET}.{node.number}.1/24", "--iptables=false", "--ip-masq=false",
             "--add-runtime", f"clamp={runtime}", "--default-runtime", "clamp",
             "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", f"/ck8s-{node.name}-docker"],
            netns=node.netns,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.api._check_alive()
            try:
                self.docker(node, "version")
                return
            except ClusterError:
                time.sleep(0.2)
        raise ClusterError(f"dockerd of {node.name} did not answer:\n{self.api.log_tail(f'dockerd-{node.name}')}")

    def _pause_tarball(self) -> Path:
        tarball = self.cache / "pause.tar"
        if tarball.exists():
            return tarball
        build = self.work / "pause"
        build.mkdir(parents=True, exist_ok=True)
        (build / "main.go").write_text(PAUSE_GO)
        env = dict(os.environ, CGO_ENABLED="0", GO111MODULE="off", GOCACHE=str(self.cache / "gocache"))
        _run("go", "build", "-o", str(build / "pause"), str(build / "main.go"), env=env)
        _run("tar", "-C", str(build), "-cf", str(tarball), "pause")
        return tarball

    def _load_images(self, node: Node, images: list[str], pause: Path, engine_host: str) -> None:
        if not self.docker(node, "images", "-q", PAUSE_IMAGE).strip():
            self.docker(node, "import", "--change", 'ENTRYPOINT ["/pause"]', str(pause), PAUSE_IMAGE)
        for image in images:
            wanted = subprocess.run(
                ["docker", "-H", engine_host, "image", "inspect", "-f", "{{.Id}}", image],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            have = self.docker(node, "images", "-q", "--no-trunc", image).decode().strip()
            if have == wanted:
                continue
            saved = subprocess.run(["docker", "-H", engine_host, "save", image], capture_output=True, check=True)
            self.docker(node, "load", "-q", input=saved.stdout)
            if have:  # the image this tag named before is kept between runs otherwise
                self.docker(node, "image", "prune", "-f")

    def _make_cgroups(self, node: Node) -> None:
        """Creates the node's cgroup root in every hierarchy (cgroup v1), with the parent's CPUs and memory nodes."""
        for hierarchy in CGROUPS.iterdir():
            if not hierarchy.is_dir() or hierarchy.is_symlink() or hierarchy.name == "unified":
                continue
            group = hierarchy / f"ck8s-{node.name}"
            group.mkdir(exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if (group / name).exists() and not (group / name).read_text().strip():
                    (group / name).write_text((hierarchy / name).read_text())

    def _remove_cgroups(self) -> None:
        for node in self.nodes:
            for hierarchy in CGROUPS.iterdir():
                group = hierarchy / f"ck8s-{node.name}"
                if group.is_dir() and not hierarchy.is_symlink():
                    for sub in sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                        with contextlib.suppress(OSError):
                            sub.rmdir()
                    with contextlib.suppress(OSError):
                        group.rmdir()

    def _start_kubelet(self, node: Node) -> None:
        self._make_cgroups(node)
        root = self.work / node.name
        pod_logs, kubelet_root = root / "pod-logs", root / "kubelet"
        for directory in (pod_logs, kubelet_root, Path(POD_LOGS)):
            directory.mkdir(parents=True, exist_ok=True)
        # Two kubelets on one machine would share /var/log/pods, and each one's garbage collection removes the
        # other's pods' log links (so a pod's log could vanish a minute after it started). Each kubelet gets a
        # /var/log/pods of its own, bound over a private mount of it in a mount namespace of its own; its root
        # dir is made a shared mount first, so the volumes it mounts there still reach its node's dockerd.
        if not _is_mount(Path(POD_LOGS)):
            _run("mount", "--bind", POD_LOGS, POD_LOGS)
        _run("mount", "--make-private", POD_LOGS)
        _run("mount", "--bind", str(kubelet_root), str(kubelet_root))
        _run("mount", "--make-shared", str(kubelet_root))
        own_logs = ["unshare", "--mount", "--propagation", "unchanged", "sh", "-c", OWN_POD_LOGS, str(pod_logs)]
        self.api._spawn(
            f"kubelet-{node.name}",
            [*own_logs, str(self.bin_dir / "kubelet"), "--kubeconfig", str(self.api.kubeconfig(node.name)),
             "--hostname-override", node.name, "--node-ip", node.address,
             "--container-runtime", "docker", "--docker-endpoint", f"unix://{self._sock(node)}",
             # each kubelet's dockershim serves its CRI on a socket of its own: on the default path the last
             # kubelet started would serve both, and create the other node's pods in its own engine
             "--container-runtime-endpoint", f"unix://{self._sock(node).parent / 'dockershim.sock'}",
             "--image-service-endpoint", f"unix://{self._sock(node).parent / 'dockershim.sock'}",
             "--pod-infra-container-image", PAUSE_IMAGE,
             # two kubelets on one machine: each its own cgroup root (else each kills the other's pods) and state
             "--cgroup-root", f"/ck8s-{node.name}", "--cgroup-driver", "cgroupfs",
             "--experimental-dockershim-root-directory", str(root / "dockershim"), "--root-dir", str(kubelet_root),
             "--fail-swap-on=false", "--anonymous-auth=true", "--authorization-mode=AlwaysAllow",
             "--read-only-port=0", "--healthz-port=0", "--make-iptables-util-chains=false",
             "--eviction-hard=memory.available<1Mi,nodefs.available<1%,imagefs.available<1%",
             "--image-gc-high-threshold=100", "--image-gc-low-threshold=99", "--max-pods=30",
             "--node-status-update-frequency=2s",
             "--node-labels", f"nvidia.com/gpu.product={node.product},nvidia.com/gpu.memory={node.memory_mib}"],
            netns=node.netns,
        )  # fmt: skip

    def _start_proxy(self, node: Node) -> None:
        """kube-proxy in iptables mode in the node's namespace, so Services' ClusterIPs answer there and in its pods."""
        self.api._spawn(
            f"kube-proxy-{node.name}",
            [str(self.bin_dir / "kube-proxy"), "--kubeconfig", str(self.api.kubeconfig("admin")),
             "--proxy-mode", "iptables", "--hostname-override", node.name, "--bind-address", node.address,
             "--cluster-cidr", f"{POD_NET}.0.0/16",
             # root here may not set a negative OOM score; conntrack's limits are the machine's, not the node's
             "--oom-score-adj", "0", "--conntrack-max-per-core", "0",
             "--conntrack-tcp-timeout-established", "0", "--conntrack-tcp-timeout-close-wait", "0"],
            netns=node.netns,
        )  # fmt: skip


def _is_mount(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


def _unmount_under(directory: Path) -> None:
    """Lazily unmounts every mount below `directory`, deepest first."""
    prefix = str(directory.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _run(*argv: str, env: dict | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise ClusterError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
