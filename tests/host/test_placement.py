"""GPU placement on a real host whose GPUs are declared with --gpus (this machine has none).

The host runs four 80 GB and two 24 GB devices; instances are real processes, and each reports
the CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES it sees from inside.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.host.bundles import hello_bundle, hello_manifest
from tests.host.conftest import FIXTURES, Host, run_cli, wait_for

GPUS = "4xNVIDIA A100-SXM4-80GB:80,NVIDIA L4:24@GPU-l4-aaaa,NVIDIA L4:24@GPU-l4-bbbb"
GPU_SOURCE = (FIXTURES / "host_gpu.py").read_text()
DEFAULT_SELECTOR = "NodeSelector(gpu_count=1, min_vram_gb_per_gpu=16)"
METRICS_KEY = "metrics-5ecret"


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("gpus")
    host = Host(
        data_dir=base / "data",
        home=base / "home",
        port=free_port(),
        extra_args=["--gpus", GPUS, "--health-interval", "0.3", "--metrics-key", METRICS_KEY],
        # what the host runs with must not reach an instance
        env={"CUDA_VISIBLE_DEVICES": "0,1,2,3", "NVIDIA_VISIBLE_DEVICES": "all"},
    )
    host.home.mkdir()
    host.start()
    host.alice = host.add_user("alice")
    host.project = base / "project"
    host.project.mkdir()
    yield host
    host.stop()


def deploy(host: Host, name: str, selector: str = DEFAULT_SELECTOR, *extra: str):
    """Writes a copy of the GPU fixture chute named `name` with this NodeSelector, and deploys it."""
    source = GPU_SOURCE.replace('name="gpu"', f'name="{name}"').replace(DEFAULT_SELECTOR, selector)
    (host.project / f"gpu_{name}.py").write_text(source)
    return host.cli("deploy", f"gpu_{name}:chute", *extra, key=host.alice, cwd=host.project)


def deployed(host: Host, name: str, selector: str = DEFAULT_SELECTOR) -> dict:
    result = deploy(host, name, selector)
    assert result.returncode == 0, result.stderr + host.log_text()[-3000:]
    return chute(host, name)


def chute(host: Host, name: str) -> dict:
    return host.api("GET", f"/chutes/{name}", key=host.alice).json()


def gpus_of(info: dict, index: int = 0) -> list[str]:
    return [g["uuid"] for g in info["instances"][index]["gpus"]]


def devices(host: Host, name: str) -> dict:
    resp = host.call(f"alice-{name}", "/devices", key=host.alice, method="GET")
    assert resp.status_code == 200, resp.text
    return resp.json()


def delete(host: Host, *names: str) -> None:
    for name in names:
        assert host.api("DELETE", f"/chutes/{name}", key=host.alice).status_code == 200


def test_each_instance_sees_only_the_gpus_it_was_given(host: Host) -> None:
    small = deployed(host, "small")
    big = deployed(host, "big", "NodeSelector(gpu_count=2, min_vram_gb_per_gpu=48)")
    cpu = deployed(host, "cpu", "NodeSelector(gpu_count=0)")
    # the smallest card that fits goes to the small chute; the big one gets two 80 GB cards
    assert gpus_of(small) == ["GPU-l4-aaaa"]
    assert gpus_of(big) == ["0", "1"]
    assert gpus_of(cpu) == []
    assert devices(host, "small")["cuda"] == "GPU-l4-aaaa"
    assert devices(host, "small")["nvidia"] == "GPU-l4-aaaa"
    assert devices(host, "big")["cuda"] == "0,1"
    assert {k: devices(host, "cpu")[k] for k in ("cuda", "nvidia")} == {"cuda": "", "nvidia": "void"}

    shown = host.cli("chutes", "get", "big", key=host.alice)
    assert shown.returncode == 0, shown.stderr
    assert "gpus 0,1 (NVIDIA A100-SXM4-80GB 80 GB)" in shown.stdout
    listing = run_cli("host", "gpus", "--data-dir", str(host.data_dir), home=host.home)
    assert listing.returncode == 0, listing.stderr
    rows = [line.split("\t") for line in listing.stdout.splitlines()]
    assert [(r[0], r[3], r[4]) for r in rows] == [
        ("0", "0", "alice-big#0"),
        ("1", "1", "alice-big#0"),
        ("2", "2", "free"),
        ("3", "3", "free"),
        ("4", "GPU-l4-aaaa", "alice-small#0"),
        ("5", "GPU-l4-bbbb", "free"),
    ]
    delete(host, "small", "big", "cpu")
    assert "alice" not in run_cli("host", "gpus", "--data-dir", str(host.data_dir), home=host.home).stdout


def test_a_deploy_that_cannot_fit_is_refused_with_what_it_needs_and_what_is_free(host: Host) -> None:
    never = deploy(host, "never", 'NodeSelector(include=["h100"])')
    assert never.returncode != 0
    assert (
        "422: cannot deploy 'alice-never': this host can never run it: needs 1 GPU with >= 16 GB of type h100; "
        "free: 4 x NVIDIA A100-SXM4-80GB 80 GB, 2 x NVIDIA L4 24 GB"
    ) in never.stderr
    assert host.api("GET", "/chutes/never", key=host.alice).status_code == 404
    assert not (host.data_dir / "chutes" / "alice-never").exists()

    deployed(host, "all80", "NodeSelector(gpu_count=4, min_vram_gb_per_gpu=80)")
    busy = deploy(host, "late", "NodeSelector(gpu_count=1, min_vram_gb_per_gpu=48)")
    assert busy.returncode != 0
    assert (
        "409: cannot deploy 'alice-late': no GPUs free for it now: needs 1 GPU with >= 48 GB; "
        "free: 2 x NVIDIA L4 24 GB; busy: 4 x NVIDIA A100-SXM4-80GB 80 GB (alice/all80)"
    ) in busy.stderr
    assert host.api("GET", "/chutes/late", key=host.alice).status_code == 404
    # a new version of a chute may take the GPUs its old version holds
    again = deploy(host, "all80", "NodeSelector(gpu_count=4, min_vram_gb_per_gpu=80)")
    assert again.returncode == 0, again.stderr
    assert chute(host, "all80")["version"] == 2
    assert gpus_of(chute(host, "all80")) == ["0", "1", "2", "3"]
    delete(host, "all80")


def test_concurrent_deploys_never_share_a_gpu(host: Host) -> None:
    selector = {"gpu_count": 1, "min_vram_gb_per_gpu": 48}
    bodies = [
        hello_bundle(host.project / f"c{i}.tgz", hello_manifest("alice", f"c{i}", node_selector=selector))
        for i in range(6)
    ]

    def upload(body: bytes) -> int:
        headers = {"Content-Type": "application/gzip"}
        return host.api("POST", "/chutes", key=host.alice, content=body, headers=headers).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(upload, bodies))
    assert sorted(statuses) == [202, 202, 202, 202, 409, 409]
    placed = [gpus_of(chute(host, f"c{i}")) for i, status in enumerate(statuses) if status == 202]
    assert sorted(uuid for gpus in placed for uuid in gpus) == ["0", "1", "2", "3"]
    delete(host, *(f"c{i}" for i, status in enumerate(statuses) if status == 202))


def test_instances_past_the_free_gpus_wait_and_start_when_a_chute_is_deleted(host: Host) -> None:
    l4 = 'NodeSelector(include=["l4"])'
    assert gpus_of(deployed(host, "first", l4)) == ["GPU-l4-aaaa"]
    assert gpus_of(deployed(host, "waiter", l4)) == ["GPU-l4-bbbb"]
    scaled = host.cli("chutes", "scale", "waiter", "2", key=host.alice)
    assert scaled.returncode == 0, scaled.stderr
    assert "alice-waiter: 2 instance(s), phase ready; 1 pending until GPUs free up: needs 1 GPU" in scaled.stderr
    info = chute(host, "waiter")
    assert info["phase"] == "ready"
    assert info["instances"][1]["phase"] == "pending"
    assert info["instances"][1]["gpus"] == []
    shown = host.cli("chutes", "get", "waiter", key=host.alice).stdout
    assert (
        "instance 1: pending  waiting for GPUs: needs 1 GPU with >= 16 GB of type l4; "
        "free: 4 x NVIDIA A100-SXM4-80GB 80 GB; busy: 2 x NVIDIA L4 24 GB (alice/first, alice/waiter)"
    ) in shown

    delete(host, "first")

    def second_ready() -> bool:
        inst = chute(host, "waiter")["instances"][1]
        return inst["phase"] == "ready" and inst

    inst = wait_for(second_ready, timeout=60, what="the pending instance to start", host=host)
    assert [g["uuid"] for g in inst["gpus"]] == ["GPU-l4-aaaa"]
    delete(host, "waiter")


def test_restart_and_crash_keep_each_instance_on_its_gpus(host: Host) -> None:
    deployed(host, "gone", "NodeSelector(min_vram_gb_per_gpu=48)")
    assert gpus_of(deployed(host, "stays", "NodeSelector(min_vram_gb_per_gpu=48)")) == ["1"]
    delete(host, "gone")  # GPU 0 is free now, and a fresh placement would take it

    host.stop()
    host.start()
    wait_for(lambda: chute(host, "stays")["phase"] == "ready", timeout=60, what="stays to come back", host=host)
    assert gpus_of(chute(host, "stays")) == ["1"]
    before = devices(host, "stays")
    assert before["cuda"] == "1"

    os.kill(chute(host, "stays")["instances"][0]["pid"], signal.SIGKILL)  # the pid as the host sees it

    def restarted() -> dict | None:
        resp = host.call("alice-stays", "/devices", key=host.alice, method="GET")
        return resp.json() if resp.status_code == 200 and resp.json()["boot"] != before["boot"] else None

    after = wait_for(restarted, timeout=30, what="the killed instance to come back", host=host)
    assert after["cuda"] == "1"
    assert chute(host, "stays")["instances"][0]["restarts"] == 1
    delete(host, "stays")


def test_host_without_gpus_says_so_and_refuses_gpu_chutes(host_factory, tmp_path: Path) -> None:
    bare = host_factory("--gpus", "none")
    assert "GPUs: no GPUs (declared with --gpus none); only chutes with gpu_count=0 can be deployed" in bare.log_text()
    key = bare.add_user("alice")
    body = hello_bundle(tmp_path / "g.tgz", hello_manifest(node_selector={"gpu_count": 1}))
    resp = bare.api("POST", "/chutes", key=key, content=body, headers={"Content-Type": "application/gzip"})
    assert resp.status_code == 422
    assert resp.json()["detail"] == (
        "cannot deploy 'alice-hello': this host can never run it: needs 1 GPU with >= 16 GB; "
        "free: none (this host has no GPUs); a chute that needs no GPU can say NodeSelector(gpu_count=0)"
    )
    assert not (bare.data_dir / "chutes").exists() or os.listdir(bare.data_dir / "chutes") == []
    cpu = hello_bundle(tmp_path / "c.tgz", hello_manifest(node_selector={"gpu_count": 0}))
    resp = bare.api("POST", "/chutes", key=key, content=cpu, headers={"Content-Type": "application/gzip"})
    assert resp.status_code == 202, resp.text


def test_bad_gpus_option_stops_the_host_with_a_usage_error(tmp_path: Path) -> None:
    result = run_cli(
        "host", "serve", "--port", str(free_port()), "--data-dir", str(tmp_path), "--gpus", "A100", home=tmp_path
    )
    assert result.returncode == 2
    assert "--gpus: cannot read 'A100'; use 'all'" in result.stderr


def test_bad_node_selector_in_a_manifest_is_400(host: Host) -> None:
    manifest = hello_manifest("alice", "odd", node_selector={"gpu_count": 99})
    body = hello_bundle(host.project / "odd.tgz", manifest)
    resp = host.api("POST", "/chutes", key=host.alice, content=body, headers={"Content-Type": "application/gzip"})
    assert resp.status_code == 400
    assert "node_selector: gpu_count: Input should be less than or equal to 8" in resp.json()["detail"]
    assert json.loads(json.dumps(resp.json()))  # a JSON answer


def test_host_metrics_show_gpus_instances_requests_and_cold_starts(host: Host) -> None:
    def metrics(key: str | None = METRICS_KEY):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.get(f"{host.url}/_metrics", headers=headers, timeout=10)

    assert metrics(None).status_code == 401
    assert metrics(host.alice).status_code == 401  # a user's key is not the metrics key
    deployed(host, "metered")
    l4 = 'index="4",uuid="GPU-l4-aaaa",name="NVIDIA L4"'
    resp = metrics()
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    lines = resp.text.splitlines()
    assert 'chutes_gpu_memory_total_bytes{index="0",uuid="0",name="NVIDIA A100-SXM4-80GB"} 80000000000' in lines
    assert f'chutes_gpu_assigned{{{l4},instance="alice-metered#0"}} 1' in lines
    assert 'chutes_gpu_assigned{index="5",uuid="GPU-l4-bbbb",name="NVIDIA L4",instance=""} 0' in lines
    assert 'chutes_chute_instances{chute="alice-metered",phase="ready"} 1' in lines
    assert 'chutes_chute_cold_start_seconds_count{chute="alice-metered"} 1' in lines
    assert 'chutes_chute_requests_in_flight{chute="alice-metered"} 0' in lines
    assert not any(line.startswith("chutes_gpu_memory_used_bytes") for line in lines)  # declared: no NVML figures

    slow = threading.Thread(target=lambda: host.call("alice-metered", "/slow", key=host.alice, json={"seconds": 3}))
    slow.start()
    busy = 'chutes_chute_requests_in_flight{chute="alice-metered"} 1'
    wait_for(lambda: busy in metrics().text.splitlines(), timeout=10, what="the request in flight", host=host)
    slow.join()
    lines = metrics().text.splitlines()
    assert 'chutes_chute_requests_in_flight{chute="alice-metered"} 0' in lines
    assert 'chutes_chute_requests_total{chute="alice-metered"} 1' in lines
    assert 'chutes_chute_request_errors_total{chute="alice-metered"} 0' in lines
    delete(host, "metered")
    assert "alice-metered" not in metrics().text


def test_host_metrics_are_off_without_a_key(host_factory) -> None:
    bare = host_factory("--gpus", "none")
    resp = httpx.get(f"{bare.url}/_metrics", timeout=10)
    assert resp.status_code == 404
    assert "start the host with --metrics-key" in resp.json()["detail"]


def test_instances_wait_when_a_restarted_host_has_fewer_gpus(host_factory, tmp_path: Path) -> None:
    small = host_factory("--gpus", "NVIDIA L4:24")
    small.alice = small.add_user("alice")
    small.project = tmp_path
    deployed(small, "model")
    small.stop()
    small.extra_args = ["--gpus", "none"]
    small.start()
    info = wait_for(lambda: (c := chute(small, "model"))["phase"] == "pending" and c, timeout=30, what="pending")
    assert info["instances"][0]["waiting_for"] == "needs 1 GPU with >= 16 GB; free: none (this host has no GPUs)"
    resp = small.call("alice-model", "/devices", key=small.alice, method="GET")
    assert resp.status_code == 503
    assert resp.json()["phase"] == "pending"
    assert "is waiting for GPUs to free up" in resp.json()["detail"]
