"""The kubernetes executor's manifests: valid for a current Kubernetes (strictly), and saying what the chute needs."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from chutes.node_selector import NodeSelector
from chutes_host.deploy.k8s_render import PodShape, RenderError, node_affinity, object_name, render_manifests
from tests.host.conftest import run_cli
from tests.k8s.conftest import EXAMPLES, ROOT, example_spec

KUBERNETES = "1.30.0"
NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / f"{p.name}.py").is_file())


def validate(objects: list[dict]) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


@pytest.mark.parametrize("name", NAMES)
def test_every_example_renders_valid_manifests(tmp_path: Path, name: str) -> None:
    spec = example_spec(name, tmp_path, image="registry.example.com/chutes/x:1")
    objects = render_manifests(spec, image="registry.example.com/chutes/x:1", replicas=2, shape=PodShape())
    assert [o["kind"] for o in objects] == ["Secret", "NetworkPolicy", "Deployment", "Service"]
    validate(objects)
    policy, deployment = objects[1]["spec"], objects[2]["spec"]
    assert policy["podSelector"]["matchLabels"] == deployment["selector"]["matchLabels"]
    assert policy["ingress"][0]["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "chutes-host"}}}]
    assert bool(policy["egress"]) == bool(spec.manifest.get("allow_external_egress"))
    pod = deployment["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["readinessProbe"]["httpGet"]["path"] == "/_ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/_ping"
    gpus = spec.node_selector.gpu_count
    assert container["resources"]["limits"].get("nvidia.com/gpu") == (str(gpus) if gpus else None)
    assert ("affinity" in pod) == bool(gpus)


def test_the_host_manifests_are_valid() -> None:
    for path in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")):
        validate([o for o in yaml.safe_load_all(path.read_text()) if o])


def test_gpu_type_and_memory_become_node_affinity() -> None:
    terms = node_affinity(
        NodeSelector(gpu_count=1, min_vram_gb_per_gpu=48, include=["a100"]), ["NVIDIA-A100-SXM4-80GB"]
    )
    memory, product = terms
    # 48 GB (decimal, as GPUs are sold) is 45,777 MiB: GPU feature discovery labels memory in MiB
    assert memory == {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["45776"]}
    assert product["operator"] == "In" and "NVIDIA-A100-SXM4-80GB" in product["values"]
    assert all("A100" in p for p in product["values"])

    # a product only this cluster has counts too; "a10" is not "a100"
    terms = node_affinity(NodeSelector(gpu_count=1, include=["a10"]), ["NVIDIA-A10-PCIE-24GB"])
    assert terms[1]["values"] == ["NVIDIA-A10", "NVIDIA-A10-PCIE-24GB"]

    excluded = node_affinity(NodeSelector(gpu_count=1, exclude=["t4"]))[1]
    assert excluded == {"key": "nvidia.com/gpu.product", "operator": "NotIn", "values": ["Tesla-T4"]}
    assert node_affinity(NodeSelector(gpu_count=0)) == []


def test_a_gpu_type_no_cluster_has_is_refused() -> None:
    with pytest.raises(RenderError, match=r"include=\['b9000'\] matches no GPU product"):
        node_affinity(NodeSelector(gpu_count=1, include=["b9000"]))


def test_object_names_are_dns_labels_and_distinct() -> None:
    long_slug = "a" * 60 + "-chute_with_underscores"
    name = object_name(long_slug)
    assert len(name) <= 63 and name.startswith("chute-") and "_" not in name
    assert object_name("bob-my_chute") != object_name("bob-my-chute")


def test_deploy_dry_run_prints_the_manifests(tmp_path: Path) -> None:
    project = tmp_path / "hello"
    project.mkdir()
    (project / "hello.py").write_text((EXAMPLES / "hello" / "hello.py").read_text())
    result = run_cli(
        "deploy", "hello.py:chute", "--dry-run", "-o", "yaml", "--namespace", "team-a", "--image", "reg.example/h:1",
        home=tmp_path, cwd=project,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    objects = list(yaml.safe_load_all(result.stdout))
    validate(objects)
    assert {o["metadata"]["namespace"] for o in objects} == {"team-a"}
    assert objects[2]["spec"]["template"]["spec"]["containers"][0]["image"] == "reg.example/h:1"

    refused = run_cli("deploy", "hello.py:chute", "--dry-run", home=tmp_path, cwd=project)
    assert refused.returncode == 2 and "pass -o yaml" in refused.stderr
