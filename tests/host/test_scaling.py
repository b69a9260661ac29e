"""Scale to zero, wake-up on request and autoscaling, on real hosts running the process executor.

Hosts run with short scaling windows (`chutes host serve` options); tests assert on phases, instance
counts, status codes and the logged reasons, never on how long anything took.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from chutes.loader import load_chute
from chutes_host.deploy.manifest import ManifestError, parse_manifest
from chutes_host.scheduling.scaler import Bounds, ScalePolicy, Scaler
from tests.host.bundles import hello_manifest
from tests.host.conftest import FIXTURES, Host, wait_for

NAPS = (FIXTURES / "host_naps.py").read_text()
DOC = Path(__file__).resolve().parents[2] / "docs" / "scaling.md"
METRICS_KEY = "metrics-5ecret"


def start_host(host_factory, tmp_path: Path, *args: str, shutdown_after: int = 1) -> Host:
    """Starts a host with these options and deploys the naps chute (stopped after `shutdown_after` idle seconds)."""
    host = host_factory("--metrics-key", METRICS_KEY, *args)
    host.alice = host.add_user("alice")
    host.project = tmp_path / "project"
    host.project.mkdir()
    source = NAPS.replace("shutdown_after_seconds=1,", f"shutdown_after_seconds={shutdown_after},")
    (host.project / "host_naps.py").write_text(source)
    deployed = host.cli("deploy", "host_naps:chute", key=host.alice, cwd=host.project)
    assert deployed.returncode == 0, deployed.stderr + host.log_text()[-3000:]
    return host


def naps(host: Host) -> dict:
    return host.api("GET", "/chutes/naps", key=host.alice).json()


def nap(host: Host, seconds: float = 0.0) -> httpx.Response:
    return host.call("alice-naps", "/nap", key=host.alice, json={"seconds": seconds}, timeout=120)


def metrics(host: Host) -> list[str]:
    return httpx.get(f"{host.url}/_metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}, timeout=10).text.split(
        "\n"
    )


def doc_block(kind: str) -> str:
    """Returns the one fenced block of docs/scaling.md of this kind ('python', 'console', ...)."""
    (text,) = [
        body for tag, body in re.findall(r"^```(\w+)[^\n]*\n(.*?)^```", DOC.read_text(), re.M | re.S) if tag == kind
    ]
    return text


def cold(host: Host) -> dict | None:
    info = naps(host)
    return info if info["phase"] == "cold" else None


def test_idle_chute_scales_to_zero_and_the_next_request_wakes_it(host_factory, tmp_path: Path) -> None:
    host = start_host(host_factory, tmp_path, "--scale-down-after", "1")
    first = nap(host)
    assert first.status_code == 200

    info = wait_for(lambda: cold(host), timeout=30, what="the idle chute to scale to zero", host=host)
    assert info["instances"] == []
    assert "alice-naps: scaling from 1 to 0 instance(s): no request for" in host.log_text()
    shown = host.cli("chutes", "get", "naps", key=host.alice)
    assert shown.stdout.splitlines()[0].endswith("  cold  private")
    assert shown.stdout.splitlines()[2] == doc_block("console").splitlines()[3]  # as docs/scaling.md shows it
    listed = host.cli("chutes", "list", key=host.alice)
    assert "\tcold\t" in listed.stdout

    woken = nap(host)  # waits for the new instance instead of failing
    assert woken.status_code == 200, woken.text
    assert woken.json()["boot"] != first.json()["boot"]
    assert "alice-naps: waking from zero: a request arrived" in host.log_text()
    assert naps(host)["phase"] == "ready"
    lines = metrics(host)
    starts = 'chutes_chute_cold_start_seconds_count{chute="alice-naps"} 2'
    assert starts in lines, [line for line in lines if "cold_start" in line] + [host.log_text()[-3000:]]
    assert 'chutes_chute_requests_waiting{chute="alice-naps"} 0' in lines

    # a scale set by the owner is a floor: the chute no longer goes cold
    assert host.cli("chutes", "scale", "naps", "1", key=host.alice).returncode == 0
    time.sleep(3)  # three times shutdown_after_seconds; the state, not the time, is asserted
    info = naps(host)
    assert info["phase"] == "ready" and len(info["instances"]) == 1
    assert host.log_text().count("scaling from 1 to 0 instance(s)") == 1


def test_a_request_not_served_within_the_wake_bound_gets_503_with_phase(host_factory, tmp_path: Path) -> None:
    host = start_host(host_factory, tmp_path, "--scale-down-after", "1", "--wake-timeout", "0")
    wait_for(lambda: cold(host), timeout=30, what="the idle chute to scale to zero", host=host)

    resp = nap(host)
    assert resp.status_code == 503
    assert resp.headers["retry-after"]
    assert resp.json()["phase"] == "starting"  # it was woken, and is still coming up
    assert "has no ready instance yet (phase: starting)" in resp.json()["detail"]
    served = wait_for(lambda: (r := nap(host)).status_code == 200 and r, timeout=60, what="the woken chute", host=host)
    assert served.json()["boot"]


def test_load_adds_an_instance_and_quiet_removes_it(host_factory, tmp_path: Path) -> None:
    host = start_host(host_factory, tmp_path, "--scale-up-after", "0.3", "--scale-down-after", "3", shutdown_after=3600)
    assert len(naps(host)["instances"]) == 1
    stop = threading.Event()
    statuses: list[int] = []

    def load() -> None:
        while not stop.is_set():
            statuses.append(nap(host, 0.5).status_code)

    def both_ready() -> bool:
        instances = naps(host)["instances"]
        return len(instances) == 2 and all(i["phase"] == "ready" for i in instances)

    with ThreadPoolExecutor(2) as pool:  # two at a time against one instance serving one at a time
        workers = [pool.submit(load) for _ in range(2)]
        try:
            wait_for(both_ready, timeout=90, what="a second instance under load", host=host)
        finally:
            stop.set()
        for worker in workers:
            worker.result()
    # the request finding the only instance busy waited for a place instead of getting 429
    assert statuses and set(statuses) == {200}, statuses
    assert "alice-naps: scaling from 1 to 2 instance(s): 2 request(s) in flight or waiting" in host.log_text()

    def back_to_one() -> bool:
        info = naps(host)
        return len(info["instances"]) == 1 and info["phase"] == "ready"

    # the newest instance is the one to go; a request it is serving when it goes must still be answered
    answered_by = lambda: nap(host).json()["instance"]  # noqa: E731
    wait_for(lambda: answered_by() == "0", timeout=30, what="a call to instance 0", host=host)
    with ThreadPoolExecutor(1) as pool:
        long = pool.submit(nap, host, 12)  # round robin: instance 1's turn
        wait_for(back_to_one, timeout=60, what="the quiet chute to scale back down", host=host)
        assert not long.done()  # it left the rotation while serving the request
        served = long.result()
    assert served.status_code == 200 and served.json()["instance"] == "1", served.text
    assert "alice-naps: scaling from 2 to 1 instance(s): 1 request(s) in flight fit on 1 instance(s)" in host.log_text()
    assert answered_by() == "0"


def test_a_full_queue_lets_the_instance_answer_429(host_factory, tmp_path: Path) -> None:
    host = start_host(host_factory, tmp_path, "--queue-limit", "0", shutdown_after=3600)
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(nap, host, 3)
        wait_for(
            lambda: 'chutes_chute_requests_in_flight{chute="alice-naps"} 1' in metrics(host),
            timeout=30,
            what="the first request in flight",
            host=host,
        )
        refused = nap(host)
        assert slow.result().status_code == 200
    assert refused.status_code == 429
    assert refused.headers["retry-after"]


BOUNDS = Bounds(floor=0, ceiling=3, idle_after=10.0, capacity=2.0)


def test_scaler_stops_an_idle_chute_only_after_its_idle_time_and_without_load() -> None:
    scaler = Scaler(ScalePolicy(up_after=1, down_after=5))
    assert scaler.decide("c", 0.0, running=1, demand=0, requests=0, bounds=BOUNDS) is None
    assert scaler.decide("c", 9.0, running=1, demand=0, requests=0, bounds=BOUNDS) is None
    assert scaler.decide("c", 12.0, running=1, demand=0, requests=1, bounds=BOUNDS) is None  # a request came
    assert scaler.decide("c", 30.0, running=1, demand=1, requests=1, bounds=BOUNDS) is None  # one in flight
    decision = scaler.decide("c", 40.1, running=1, demand=0, requests=1, bounds=BOUNDS)
    assert decision is not None and decision.target == 0
    assert decision.reason == "no request for 10 s (shutdown_after_seconds 10)"
    floored = Bounds(floor=1, ceiling=3, idle_after=10.0, capacity=2.0)
    assert Scaler(ScalePolicy()).decide("c", 0.0, running=1, demand=0, requests=0, bounds=floored) is None
    assert Scaler(ScalePolicy()).decide("c", 0.0, running=0, demand=0, requests=0, bounds=floored) is not None
    never = Bounds(floor=0, ceiling=3, idle_after=None, capacity=2.0)
    scaler = Scaler(ScalePolicy())
    scaler.decide("c", 0.0, running=1, demand=0, requests=0, bounds=never)
    assert scaler.decide("c", 1e6, running=1, demand=0, requests=0, bounds=never) is None


def test_scaler_adds_after_sustained_load_up_to_the_ceiling() -> None:
    scaler = Scaler(ScalePolicy(up_after=1, down_after=5))
    assert scaler.decide("c", 0.0, running=1, demand=3, requests=3, bounds=BOUNDS) is None
    assert scaler.decide("c", 0.5, running=1, demand=1, requests=4, bounds=BOUNDS) is None  # the load dipped
    assert scaler.decide("c", 1.2, running=1, demand=3, requests=5, bounds=BOUNDS) is None  # so the window restarts
    decision = scaler.decide("c", 2.2, running=1, demand=3, requests=6, bounds=BOUNDS)
    assert decision is not None and decision.target == 2
    assert decision.reason.startswith("3 request(s) in flight or waiting on 1 instance(s) stayed above")
    assert scaler.decide("c", 9.0, running=3, demand=50, requests=7, bounds=BOUNDS) is None  # at the ceiling
    assert scaler.decide("c", 20.0, running=3, demand=50, requests=8, bounds=BOUNDS) is None


def test_scaler_removes_after_a_quiet_period_down_to_one() -> None:
    scaler = Scaler(ScalePolicy(up_after=1, down_after=5))
    busy = Bounds(floor=0, ceiling=3, idle_after=None, capacity=2.0)
    assert scaler.decide("c", 0.0, running=3, demand=4, requests=1, bounds=busy) is None  # 4 fit on 2
    assert scaler.decide("c", 4.0, running=3, demand=5, requests=2, bounds=busy) is None  # 5 do not
    assert scaler.decide("c", 8.0, running=3, demand=4, requests=3, bounds=busy) is None
    decision = scaler.decide("c", 13.0, running=3, demand=4, requests=4, bounds=busy)
    assert decision is not None and decision.target == 2
    assert scaler.decide("c", 13.1, running=1, demand=0, requests=4, bounds=busy) is None
    assert scaler.decide("c", 100.0, running=1, demand=0, requests=4, bounds=busy) is None  # one stays


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("shutdown_after_seconds", 0, "shutdown_after_seconds: Input should be greater than or equal to 1"),
        ("scaling_threshold", 5, "scaling_threshold: Input should be less than or equal to 1"),
        ("scaling_threshold", "lots", "scaling_threshold: Input should be a valid number"),
    ],
)
def test_manifest_scaling_fields_are_checked(field: str, value: object, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(hello_manifest(**{field: value}))
    assert message in str(caught.value)


def test_the_doc_example_chute_has_the_scaling_it_describes(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "llm.py").write_text(doc_block("python"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "llm", raising=False)  # docs/gpus.md's test loads an llm.py of its own
    manifest = load_chute("llm:chute").manifest()
    assert (manifest["concurrency"], manifest["max_instances"]) == (8, 4)
    assert (manifest["scaling_threshold"], manifest["shutdown_after_seconds"]) == (0.5, 600)
