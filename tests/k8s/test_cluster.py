"""The kubernetes executor on a real two-node cluster, through the real `chutes host serve` and `chutes` CLI:
deploy and call, scale over nodes with 1 + 2 fake GPUs, pending for lack of GPUs, a killed pod replaced, a
redeploy under load without a failed request, logs, and delete leaving nothing behind."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from chutes_host.deploy.k8s_render import object_name
from tests.conftest import free_port
from tests.host.conftest import Host, make_project, wait_for
from tests.k8s.conftest import CRASH_IMAGE, TEST_IMAGE

pytestmark = pytest.mark.k8s
SLUG = "alice-k8s-hello"
NAME = object_name(SLUG)
KINDS = "deployments,replicasets,pods,services,secrets,networkpolicies"
GONE_WITHIN = 300  # s: pods of deleted chutes gone, on a 2-core machine other test suites load too


@pytest.fixture(scope="module")
def host(cluster, tmp_path_factory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("k8s-host")
    args = ["--executor", "kubernetes", "--kubeconfig", str(cluster.api.kubeconfig("host")), "--pod-cpu", "50m",
            "--pod-memory", "256Mi", "--health-interval", "0.5"]  # fmt: skip
    host = Host(data_dir=base / "data", home=base / "home", port=free_port(), extra_args=args)
    host.home.mkdir()
    host.start()
    host.key = host.add_user("alice")
    host.project = make_project(base / "project", "k8s_hello.py", "k8s_crash.py", "k8s_idle.py", "k8s_busy.py")
    yield host
    host.stop()


def chute(host: Host) -> dict:
    return host.api("GET", f"/chutes/{SLUG}", key=host.key).json()


def pods(cluster, slug: str = SLUG) -> list[dict]:
    listed = cluster.api.kubectl(
        "get", "pods", "-n", "chutes", "-l", f"chutes.ai/chute-id={object_name(slug)}", "-o", "json"
    )
    return json.loads(listed)["items"]


def ready_pods(host: Host, count: int) -> list[dict] | None:
    instances = chute(host)["instances"]
    ready = [i for i in instances if i["phase"] == "ready"]
    return ready if len(ready) == count and len(instances) == count else None


def deploy(host: Host) -> str:
    result = host.cli("deploy", "k8s_hello:chute", "--image", TEST_IMAGE, "--public", key=host.key, cwd=host.project,
                      timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stderr + host.log_text()[-3000:]
    return result.stderr


def test_deploy_and_call_through_the_gateway(host: Host, cluster) -> None:
    progress = deploy(host)
    assert "ready in" in progress
    (instance,) = chute(host)["instances"]
    assert instance["phase"] == "ready" and instance["node"] in ("n1", "n2") and instance["pod"].startswith(NAME)
    shown = host.cli("chutes", "get", "k8s-hello", key=host.key).stdout
    assert f"instance 0: ready  pod {instance['pod']} on {instance['node']}  version 1  restarts 0" in shown
    r = host.call(SLUG, "/hello", json={"name": "Ada"})
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Hello, Ada!", "pod": instance["pod"]}
    # the host has no GPUs of its own here, and must not claim that GPU chutes cannot be deployed
    assert "GPUs: placed by the cluster" in host.log_text()
    assert "only chutes with gpu_count=0" not in host.log_text()


def test_scale_over_the_nodes_gpus_and_the_fourth_replica_waits_for_one(host: Host, cluster) -> None:
    assert host.cli("chutes", "scale", "k8s-hello", "3", key=host.key).returncode == 0
    ready = wait_for(lambda: ready_pods(host, 3), timeout=90, what="3 ready pods", host=host)
    # one GPU on n1, two on n2: the scheduler had to use both nodes, one pod per GPU
    assert sorted(i["node"] for i in ready) == ["n1", "n2", "n2"]
    answered = {host.call(SLUG, "/hello", json={"name": "x"}).json()["pod"] for _ in range(12)}
    assert answered == {i["pod"] for i in ready}  # the gateway spreads requests over every ready pod

    assert host.cli("chutes", "scale", "k8s-hello", "4", key=host.key).returncode == 0

    def pending() -> dict | None:
        waiting = [i for i in chute(host)["instances"] if i["phase"] == "pending"]
        return waiting[0] if waiting else None

    waiting = wait_for(pending, timeout=60, what="a pending pod", host=host)
    assert "Insufficient nvidia.com/gpu" in waiting["waiting_for"]
    shown = host.cli("chutes", "get", "k8s-hello", key=host.key)
    assert "Insufficient nvidia.com/gpu" in shown.stdout + shown.stderr
    assert chute(host)["phase"] == "ready"  # three pods still serve

    assert host.cli("chutes", "scale", "k8s-hello", "1", key=host.key).returncode == 0
    wait_for(lambda: ready_pods(host, 1), timeout=90, what="one pod left", host=host)


def test_a_killed_pod_is_replaced(host: Host, cluster) -> None:
    (before,) = wait_for(lambda: ready_pods(host, 1), timeout=60, what="one ready pod", host=host)
    cluster.api.kubectl("delete", "pod", before["pod"], "-n", "chutes", "--wait=false")

    def replaced() -> list[dict] | None:
        ready = ready_pods(host, 1)
        return ready if ready and ready[0]["pod"] != before["pod"] else None

    (after,) = wait_for(replaced, timeout=90, what="a replacement pod", host=host)
    assert host.call(SLUG, "/hello", json={"name": "B"}).json()["pod"] == after["pod"]


def test_a_redeploy_under_load_fails_no_request(host: Host, cluster) -> None:
    stop = threading.Event()
    outcomes: list[tuple[int, str]] = []

    def load() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                try:
                    r = client.post(f"{host.url}/hello", json={"name": "L"}, headers={"Host": f"{SLUG}.localhost"})
                    outcomes.append((r.status_code, r.json().get("pod", r.text) if r.status_code == 200 else r.text))
                except httpx.HTTPError as exc:
                    outcomes.append((0, repr(exc)))

    workers = [threading.Thread(target=load) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        deploy(host)
        wait_for(lambda: [p for p in pods(cluster) if p["metadata"]["labels"]["chutes.ai/version"] == "1"] == [],
                 timeout=90, what="the old pod to go")  # fmt: skip
    finally:
        stop.set()
        for w in workers:
            w.join()
    failed = [o for o in outcomes if o[0] != 200]
    assert failed == [] and len(outcomes) > 20
    assert len({pod for _, pod in outcomes}) >= 2  # answered by the old pod, then by the new one
    (now,) = chute(host)["instances"]
    assert now["version"] == 2 and chute(host)["version"] == 2


def test_a_restarted_host_adopts_the_running_pod(host: Host, cluster) -> None:
    (before,) = chute(host)["instances"]
    host.stop()
    assert [p["metadata"]["name"] for p in pods(cluster)] == [before["pod"]]  # the pod outlives the host
    host.start()
    (after,) = wait_for(lambda: ready_pods(host, 1), timeout=60, what="the pod to be ready again", host=host)
    assert after["pod"] == before["pod"] and after["version"] == 2  # no new rollout, no second version
    assert host.call(SLUG, "/hello", json={"name": "R"}).json()["pod"] == before["pod"]


def test_logs_stream_from_the_pods(host: Host) -> None:
    (instance,) = chute(host)["instances"]
    result = host.cli("chutes", "logs", "k8s-hello", key=host.key)
    assert result.returncode == 0
    assert f"k8s-hello starting on {instance['pod']}" in result.stdout


def test_a_crash_looping_chute_fails_its_deploy_with_its_last_log_lines(host: Host, cluster) -> None:
    result = host.cli("deploy", "k8s_crash:chute", "--image", CRASH_IMAGE, key=host.key, cwd=host.project, timeout=240)
    assert result.returncode == 1
    assert "the chute failed while starting: pod chute-alice-k8s-crash-" in result.stderr
    assert "is crash-looping" in result.stderr
    assert "k8s-crash: the model file /models/weights.bin is missing" in result.stderr  # the container's own words
    got = host.api("GET", "/chutes/alice-k8s-crash", key=host.key).json()
    assert got["phase"] == "failed" and got["instances"][0]["phase"] == "crash-looping"
    # the next test deletes it and deploys the name again


def test_an_image_the_nodes_cannot_pull_fails_the_deploy_while_pulling(host: Host, cluster) -> None:
    """Deployed again right after a crash-looping chute of the same name was deleted, while the garbage collector
    has not yet marked the old pods (seconds on a loaded machine; here its controller-manager is stopped): they are
    not the new chute's, and its deploy fails for its own reason, the pull."""
    got = host.api("GET", "/chutes/alice-k8s-crash", key=host.key)
    if got.status_code != 200 or got.json()["phase"] != "failed":  # run alone: first the crash-looping chute
        result = host.cli("deploy", "k8s_crash:chute", "--image", CRASH_IMAGE, key=host.key, cwd=host.project,
                          timeout=240)  # fmt: skip
        assert result.returncode == 1 and "is crash-looping" in result.stderr, result.stderr
    old = [p["metadata"]["name"] for p in pods(cluster, "alice-k8s-crash")]
    assert old, "the crash-looping chute has no pod to leave behind"
    outcome: dict[str, object] = {}

    def delete_and_deploy_again() -> None:
        outcome["delete"] = host.cli("chutes", "delete", "k8s-crash", "--yes", key=host.key)
        outcome["deploy"] = host.cli("deploy", "k8s_crash:chute", "--image", "registry.invalid/nobody/none:1",
                                     key=host.key, cwd=host.project, timeout=300)  # fmt: skip

    worker = threading.Thread(target=delete_and_deploy_again)
    with cluster.api.paused("kube-controller-manager"):
        worker.start()
        worker.join(10)  # long enough for the new deploy to see the old pods, which nothing removes meanwhile
    worker.join(330)
    assert outcome["delete"].returncode == 0, outcome["delete"].stderr
    result = outcome["deploy"]
    assert result.returncode == 1
    assert "the chute failed while pulling: pod chute-alice-k8s-crash-" in result.stderr, (
        result.stderr + "\n".join(describe(o) for o in objects(cluster, "pods", "chutes.ai/chute-id=" +
                                                                  object_name("alice-k8s-crash")))
    )  # fmt: skip
    assert not any(f"pod {name}" in result.stderr for name in old)
    # the kubelet's own words: ErrImagePull, or ImagePullBackOff when the host first saw the pod in its retry pause
    assert "registry.invalid" in result.stderr
    assert "ErrImagePull" in result.stderr or "ImagePullBackOff" in result.stderr
    got = host.api("GET", "/chutes/alice-k8s-crash", key=host.key).json()
    assert got["instances"][0]["phase"] in ("pull-failed", "pulling")  # the kubelet retries, and says so
    assert host.cli("chutes", "delete", "k8s-crash", "--yes", key=host.key).returncode == 0


def test_an_idle_chute_scales_to_zero_replicas_and_a_request_wakes_it(host: Host, cluster) -> None:
    result = host.cli("deploy", "k8s_idle:chute", "--image", TEST_IMAGE, "--public", key=host.key, cwd=host.project,
                      timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stderr
    name = object_name("alice-k8s-idle")

    def replicas() -> str:
        return cluster.api.kubectl("get", "deployment", name, "-n", "chutes", "-o", "jsonpath={.spec.replicas}")

    wait_for(lambda: replicas() == "0", timeout=60, what="the idle chute to scale to zero", host=host)
    wait_for(lambda: host.api("GET", "/chutes/alice-k8s-idle", key=host.key).json()["phase"] == "cold", timeout=60,
             what="the chute to be cold", host=host)  # fmt: skip
    r = host.call("alice-k8s-idle", "/hello", json={"name": "Z"}, timeout=90)
    assert r.status_code == 200, r.text
    assert replicas() == "1"
    assert host.cli("chutes", "delete", "k8s-idle", "--yes", key=host.key).returncode == 0


def test_load_adds_a_replica(host: Host, cluster) -> None:
    result = host.cli("deploy", "k8s_busy:chute", "--image", TEST_IMAGE, "--public", key=host.key, cwd=host.project,
                      timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stderr
    name = object_name("alice-k8s-busy")
    stop = threading.Event()
    statuses: list[int] = []

    def load() -> None:
        while not stop.is_set():
            r = host.call("alice-k8s-busy", "/slow", json={"seconds": 0.5}, timeout=60)
            statuses.append(r.status_code)

    workers = [threading.Thread(target=load) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        wait_for(lambda: cluster.api.kubectl("get", "deployment", name, "-n", "chutes", "-o",
                                             "jsonpath={.status.readyReplicas}") == "2",
                 timeout=90, what="the scaler to add a second ready replica", host=host)  # fmt: skip
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert set(statuses) == {200}
    assert "scaling from 1 to 2 instance(s)" in host.log_text()
    assert host.cli("chutes", "delete", "k8s-busy", "--yes", key=host.key).returncode == 0


def test_a_failing_redeploy_leaves_the_old_pod_serving(host: Host, cluster) -> None:
    (serving,) = ready_pods(host, 1)
    version = chute(host)["version"]
    result = host.cli("deploy", "k8s_hello:chute", "--image", CRASH_IMAGE, "--public", key=host.key, cwd=host.project,
                      timeout=240)  # fmt: skip
    assert result.returncode == 1 and "is crash-looping" in result.stderr
    got = chute(host)
    assert got["phase"] == "failed" and got["version"] == version + 1
    for _ in range(5):  # Kubernetes removes no old pod before a new one is ready: the old version answers
        r = host.call(SLUG, "/hello", json={"name": "still"})
        assert r.status_code == 200, (r.text, got)
        assert r.json()["pod"] == serving["pod"]


def test_delete_removes_everything(host: Host, cluster) -> None:
    assert host.cli("chutes", "delete", "k8s-hello", "--yes", key=host.key).returncode == 0
    # what the host deletes itself is gone as soon as it answers
    assert objects(cluster, "deployments,services,secrets,networkpolicies", f"chutes.ai/chute-id={NAME}") == []
    assert host.call(SLUG, "/hello", json={"name": "x"}).status_code == 404
    # ReplicaSets and pods go after: the garbage collector marks them, each pod pauses 3 s (preStop) and stops, and
    # its kubelet removes it. Seconds on a quiet machine; on a loaded 2-core one minutes, so the bound is generous
    # and a failure says what was left, in which state.
    deadline = time.monotonic() + GONE_WITHIN
    while left := objects(cluster, KINDS, "app.kubernetes.io/managed-by=chutes-host"):
        if time.monotonic() > deadline:
            pytest.fail(f"{len(left)} object(s) of deleted chutes still there after {GONE_WITHIN} s:\n"
                        + "\n".join(describe(o) for o in left))  # fmt: skip
        time.sleep(1)


def objects(cluster, kinds: str, selector: str) -> list[dict]:
    listed = cluster.api.kubectl("get", kinds, "-n", "chutes", "-l", selector, "-o", "json")
    return json.loads(listed)["items"]


def describe(obj: dict) -> str:
    """Says what an object is and, for a pod, the state it is in (phase, node, containers, being deleted since)."""
    meta = obj["metadata"]
    text = f"{obj['kind']} {meta['name']}"
    if meta.get("deletionTimestamp"):
        text += f" (being deleted since {meta['deletionTimestamp']})"
    if obj["kind"] == "Pod":
        status = obj.get("status", {})
        states = [f"{c['name']}: {json.dumps(c.get('state'))}" for c in status.get("containerStatuses", [])]
        containers = "; ".join(states) or "no containers"
        text += f": phase {status.get('phase')} on {obj['spec'].get('nodeName')}; {containers}"
    elif obj["kind"] == "ReplicaSet":
        text += f": {obj.get('status', {}).get('replicas')} replica(s)"
    return text
