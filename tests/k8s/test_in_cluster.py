"""The host running inside the two-node cluster from deploy/kubernetes/rbac.yaml and host.yaml as shipped: it
reaches the API server with its service account (no kubeconfig), places a chute's pod with only rbac.yaml's
permissions and routes to it; and ClusterIP Services (the host's and the chute's) answer through kube-proxy
inside the nodes' network namespaces."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from chutes_host.deploy.k8s_render import object_name
from tests.host.conftest import make_project, run_cli, wait_for
from tests.k8s.conftest import HOST_IMAGE, RBAC, ROOT, TEST_IMAGE

pytestmark = pytest.mark.k8s
HOST_YAML = ROOT / "deploy" / "kubernetes" / "host.yaml"
DOMAIN = "chutes.test"
SLUG = "alice-k8s-hello"
NAME = object_name(SLUG)
ACCOUNT = "system:serviceaccount:chutes:chutes-host"
# a request made from inside a node's network namespace, where kube-proxy's rules turn ClusterIPs into pods
NODE_REQUEST = """
import sys, urllib.request
url, host, body = sys.argv[1:]
request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json", "Host": host})
with urllib.request.urlopen(request, timeout=20) as response:
    print(response.status, response.read().decode())
"""


def host_manifests() -> str:
    """host.yaml with what its comment tells a user to change (the image and the domain), and one thing the test
    cluster cannot give: it has no PersistentVolume provisioner, so the data volume is an emptyDir instead of
    the PersistentVolumeClaim (the claim is left out)."""
    docs = [doc for doc in yaml.safe_load_all(HOST_YAML.read_text()) if doc]
    kept = []
    for doc in docs:
        if doc["kind"] == "PersistentVolumeClaim":
            continue
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]
            (container,) = pod["containers"]
            assert container["image"] == "registry.example.com/chutes-host:latest"  # what a user replaces
            container["image"] = HOST_IMAGE
            assert "--domain=chutes.example.com" in container["args"]
            container["args"] = [f"--domain={DOMAIN}" if a.startswith("--domain=") else a for a in container["args"]]
            (data,) = [v for v in pod["volumes"] if v["name"] == "data"]
            assert data == {"name": "data", "persistentVolumeClaim": {"claimName": "chutes-host-data"}}
            data.pop("persistentVolumeClaim")
            data["emptyDir"] = {}
        kept.append(doc)
    assert [d["kind"] for d in kept] == ["Deployment", "Service"]
    return yaml.safe_dump_all(kept)


def host_pod(cluster) -> dict | None:
    listed = cluster.api.kubectl("get", "pods", "-n", "chutes", "-l", "app.kubernetes.io/name=chutes-host", "-o",
                                 "json")  # fmt: skip
    pods = [p for p in json.loads(listed)["items"] if not p["metadata"].get("deletionTimestamp")]
    return pods[0] if len(pods) == 1 else None


def ready(pod: dict | None) -> bool:
    conditions = (pod or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


class InClusterHost:
    """The host of host.yaml as the test sees it: its pod, its URL at the pod's IP (the root namespace routes to
    the pod networks), and the `chutes` CLI pointed at it."""

    def __init__(self, cluster, home: Path, project: Path) -> None:
        self.cluster, self.home, self.project = cluster, home, project
        self.url = self.key = ""

    def pod(self) -> dict | None:
        return host_pod(self.cluster)

    def ready_pod(self) -> dict | None:
        pod = self.pod()
        if ready(pod):
            return pod
        time.sleep(0.5)  # kubectl costs CPU the nodes share
        return None

    def cli(self, *args: str, timeout: float = 120):
        return run_cli(*args, home=self.home, cwd=self.project, timeout=timeout, CHUTES_API_URL=self.url,
                       CHUTES_API_KEY=self.key)  # fmt: skip

    def log_text(self) -> str:
        """The host container's own output, read from its node's engine (what it printed even when the API
        server cannot reach its kubelet, e.g. a host that failed while the cluster was unsettled)."""
        pod = self.pod()
        if not pod or not pod["spec"].get("nodeName"):
            return f"(no host pod placed: {json.dumps((pod or {}).get('status', {}))[:2000]})"
        node = next(n for n in self.cluster.nodes if n.name == pod["spec"]["nodeName"])
        ids = self.cluster.docker(node, "ps", "-aq", "--filter", f"name=k8s_host_{pod['metadata']['name']}_").split()
        if not ids:
            return f"(no host container yet: {json.dumps(pod.get('status', {}))[:2000]})"
        result = subprocess.run(["docker", "-H", self.cluster.engine(node), "logs", ids[0].decode()],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        return result.stdout + result.stderr


@pytest.fixture(scope="module")
def in_cluster(cluster, tmp_path_factory) -> Iterator[InClusterHost]:
    base = tmp_path_factory.mktemp("in-cluster")
    (base / "home").mkdir()
    host = InClusterHost(cluster, base / "home", make_project(base / "project", "k8s_hello.py"))
    manifests = host_manifests()
    cluster.api.kubectl("apply", "-f", str(RBAC))
    cluster.api.kubectl("apply", "-f", "-", input=manifests)
    try:
        pod = wait_for(host.ready_pod, timeout=120, what="the host pod to be Ready", host=host)
        host.url = f"http://{pod['status']['podIP']}:8080"
        yield host
    finally:
        cluster.api.kubectl("delete", "-f", "-", "--wait=false", input=manifests, check=False)
        cluster.api.kubectl("delete", "deployments,services,secrets", "-n", "chutes", "-l",
                            f"chutes.ai/chute-id={NAME}", "--wait=false", check=False)  # fmt: skip


def test_the_host_in_the_cluster_deploys_and_routes_with_only_its_service_account(in_cluster, cluster) -> None:
    pod = in_cluster.pod()
    assert pod["spec"]["serviceAccountName"] == "chutes-host"
    (container,) = pod["spec"]["containers"]
    assert not any("kubeconfig" in arg for arg in container["args"])  # the in-cluster service account, nothing else
    can = {
        what: cluster.api.kubectl("auth", "can-i", *what.split(), "-n", "chutes", "--as", ACCOUNT, check=False).strip()
        for what in ("patch deployments", "create pods", "delete nodes", "get secrets")
    }
    assert can == {"patch deployments": "yes", "create pods": "no", "delete nodes": "no", "get secrets": "yes"}

    # the bootstrap of docs/kubernetes.md: the first user is added inside the host's pod
    added = cluster.api.kubectl("exec", "-n", "chutes", pod["metadata"]["name"], "--", "chutes", "host", "users",
                                "add", "alice", "--data-dir", "/data")  # fmt: skip
    in_cluster.key = added.strip()
    assert in_cluster.key.startswith("cpk_"), added

    result = in_cluster.cli("deploy", "k8s_hello:chute", "--image", TEST_IMAGE, "--public", timeout=240)
    assert result.returncode == 0, result.stderr + in_cluster.log_text()[-4000:]
    assert "ready in" in result.stderr
    got = httpx.get(f"{in_cluster.url}/api/v1/chutes/{SLUG}", headers={"X-API-Key": in_cluster.key}, timeout=30)
    (instance,) = got.json()["instances"]
    assert instance["phase"] == "ready" and instance["pod"].startswith(NAME) and instance["node"] in ("n1", "n2")

    # the pod the host placed carries its own label, and the gateway in the cluster routes to it
    placed = json.loads(cluster.api.kubectl("get", "pod", instance["pod"], "-n", "chutes", "-o", "json"))
    assert placed["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "chutes-host"
    r = httpx.post(f"{in_cluster.url}/hello", json={"name": "Ada"}, headers={"Host": f"{SLUG}.{DOMAIN}"}, timeout=30)
    assert r.status_code == 200, r.text + in_cluster.log_text()[-4000:]
    assert r.json() == {"message": "Hello, Ada!", "pod": instance["pod"]}
    assert "Forbidden" not in in_cluster.log_text()[-4000:]


def node_request(cluster, node, url: str, host: str, body: dict) -> tuple[int, dict]:
    """Calls `url` from inside the node's network namespace; retries while the node's kube-proxy has not yet
    written the rules for a Service that just got its endpoint (it refuses the connection until then)."""
    failures = []

    def call() -> tuple[int, dict] | None:
        result = cluster.in_node(node, sys.executable, "-c", NODE_REQUEST, url, host, json.dumps(body))
        if result.returncode != 0:
            failures.append(result.stderr[-2000:])
            return None
        status, _, text = result.stdout.partition(" ")
        return int(status), json.loads(text)

    try:
        return wait_for(call, timeout=45, what=f"{url} from {node.name}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {failures[-1] if failures else ''}") from None


def test_cluster_ips_answer_through_kube_proxy(in_cluster, cluster) -> None:
    got = httpx.get(f"{in_cluster.url}/api/v1/chutes/{SLUG}", headers={"X-API-Key": in_cluster.key}, timeout=30)
    (instance,) = got.json()["instances"]
    chute_ip = cluster.api.kubectl("get", "service", NAME, "-n", "chutes", "-o", "jsonpath={.spec.clusterIP}")
    host_ip = cluster.api.kubectl("get", "service", "chutes-host", "-n", "chutes", "-o", "jsonpath={.spec.clusterIP}")
    assert chute_ip and host_ip
    for node in cluster.nodes:  # from both nodes: the pods are on one of them, or on each
        # the chute's own Service, as a client inside the cluster calls it, without the host
        status, answer = node_request(cluster, node, f"http://{chute_ip}:8000/hello", f"{chute_ip}:8000", {"name": "K"})
        assert (status, answer) == (200, {"message": "Hello, K!", "pod": instance["pod"]})
        # the host's Service (port 80), through its gateway, as the domain's wildcard would be routed to it
        status, answer = node_request(cluster, node, f"http://{host_ip}/hello", f"{SLUG}.{DOMAIN}", {"name": "S"})
        assert (status, answer) == (200, {"message": "Hello, S!", "pod": instance["pod"]})


def test_the_host_in_the_cluster_deletes_what_it_made(in_cluster, cluster) -> None:
    assert in_cluster.cli("chutes", "delete", "k8s-hello", "--yes").returncode == 0

    def nothing_left() -> bool:
        listed = cluster.api.kubectl("get", "deployments,replicasets,pods,services,secrets", "-n", "chutes", "-l",
                                     f"chutes.ai/chute-id={NAME}", "-o", "name")  # fmt: skip
        return listed.strip() == ""

    wait_for(nothing_left, timeout=90, what="every object of the chute to go")
