"""Tenants of a Kubernetes host stay apart, on a real API server through the real `chutes host serve` and CLI: a
tenant can neither run nor build FROM another tenant's image, and each chute's pods get a NetworkPolicy that
lets in only the host's pods and lets out nothing unless the chute allows external egress."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from chutes_host.deploy.k8s_render import object_name
from tests.conftest import free_port
from tests.host.conftest import Host, make_project, wait_for

pytestmark = pytest.mark.k8s
REGISTRY = "registry.example:5000"
# what bob's pushed image is called; alice learns the form from her own build log
BOBS = f"{REGISTRY}/chutes/bob-hello:v1-0123456789abcdef0123"
EGRESS_CHUTE = """\
from chutes.chute import Chute, NodeSelector

chute = Chute(username="alice", name="fetcher", image="registry.example:5000/chutes/alice-fetcher:v1",
              node_selector=NodeSelector(gpu_count=0), allow_external_egress=True)


@chute.cord(public_api_path="/fetch")
async def fetch(self, url: str) -> dict:
    return {"url": url}
"""


@pytest.fixture(scope="module")
def host(api_server, tmp_path_factory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("k8s-tenants")
    args = ["--executor", "kubernetes", "--kubeconfig", str(api_server.kubeconfig("host")), "--registry", REGISTRY,
            "--pod-cpu", "50m", "--pod-memory", "256Mi"]  # fmt: skip
    host = Host(data_dir=base / "data", home=base / "home", port=free_port(), extra_args=args)
    host.home.mkdir()
    host.start()
    host.key = host.add_user("alice")
    host.add_user("bob")
    host.project = make_project(base / "project", "host_hello.py")
    yield host
    host.stop()


def alices_chutes(host: Host) -> list[str]:
    return [c["slug"] for c in host.api("GET", "/chutes", key=host.key).json()]


def policy(api_server, slug: str) -> dict | None:
    got = api_server.kubectl("get", "networkpolicy", object_name(slug), "-n", "chutes", "-o", "json", check=False)
    return json.loads(got) if got.strip() else None


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        (BOBS, "belongs to another chute"),
        (BOBS.replace("registry.example", "Registry.EXAMPLE"), "belongs to another chute"),  # the same registry
        (f"{REGISTRY}/chutes/bob-hello@sha256:{'ab' * 32}", "belongs to another chute"),
        ("localhost/chutes-host/0123456789ab/bob-hello:v1", "belongs to another chute"),  # the host's engine
        ("sha256:" + "cd" * 32, "looks like an image id"),  # a node's engine would run whichever image has it
    ],
)
def test_running_another_tenants_image_is_refused_at_upload(host: Host, ref: str, why: str) -> None:
    result = host.cli("deploy", "host_hello:chute", "--image", ref, "--no-wait", key=host.key, cwd=host.project)
    assert result.returncode != 0
    assert f"the image to run {ref!r} {why}" in result.stderr, result.stderr
    assert alices_chutes(host) == []  # refused before anything was recorded


def test_building_from_another_tenants_image_is_refused_at_upload(host: Host, tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    (project / "from_bob.py").write_text(
        "from chutes.chute import Chute, NodeSelector\n"
        "from chutes.image import Image\n\n"
        f"image = Image('alice', 'from-bob', '1').from_base({BOBS!r})\n"
        "chute = Chute(username='alice', name='from-bob', image=image, node_selector=NodeSelector(gpu_count=0))\n"
    )
    result = host.cli("deploy", "from_bob:chute", "--no-wait", key=host.key, cwd=project)
    assert result.returncode != 0
    assert f"the base image {BOBS!r} belongs to another chute" in result.stderr, result.stderr
    assert alices_chutes(host) == []


def test_a_chute_gets_a_network_policy_that_lets_in_only_the_host_and_goes_with_it(host: Host, api_server) -> None:
    own = f"{REGISTRY}/chutes/alice-hello:v1"  # her own repository is hers to name
    result = host.cli("deploy", "host_hello:chute", "--image", own, "--no-wait", key=host.key, cwd=host.project)
    assert result.returncode == 0, result.stderr
    got = wait_for(lambda: policy(api_server, "alice-hello"), timeout=60, what="the chute's NetworkPolicy", host=host)
    deployment = json.loads(
        api_server.kubectl("get", "deployment", object_name("alice-hello"), "-n", "chutes", "-o", "json")
    )
    spec = got["spec"]
    # it selects exactly the chute's pods, whatever their version
    assert spec["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    (rule,) = spec["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "chutes-host"}}}]
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    assert not spec.get("egress")  # no way out, DNS included: the chute did not ask for egress
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == own

    assert host.cli("chutes", "delete", "hello", "--yes", key=host.key).returncode == 0
    assert policy(api_server, "alice-hello") is None


def test_a_chute_that_allows_egress_may_connect_out_but_not_to_instance_metadata(
    host: Host, api_server, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "project")
    (project / "fetcher.py").write_text(EGRESS_CHUTE)
    result = host.cli("deploy", "fetcher:chute", "--no-wait", key=host.key, cwd=project)
    assert result.returncode == 0, result.stderr
    got = wait_for(lambda: policy(api_server, "alice-fetcher"), timeout=60, what="the chute's NetworkPolicy", host=host)
    (rule,) = got["spec"]["egress"]
    assert rule == {
        "to": [
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}},
            {"ipBlock": {"cidr": "::/0", "except": ["fe80::/10"]}},
        ]
    }
    assert len(got["spec"]["ingress"]) == 1  # still reached only from the host's pods
    assert host.cli("chutes", "delete", "fetcher", "--yes", key=host.key).returncode == 0
    assert policy(api_server, "alice-fetcher") is None
