"""Renders one chute version into Kubernetes manifests (Secret, NetworkPolicy, Deployment, Service) from
templates/kubernetes."""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chutes.node_selector import NodeSelector, gpu_type_matches
from chutes_host.deploy.spec import DeploymentSpec

CHUTE_PORT = 8000
HOME = "/home/chutes"
RUN_USER = (1000, 1000)  # the `chutes` user of built images (as the docker executor runs them)
GPU_RESOURCE = "nvidia.com/gpu"
# the node labels NVIDIA's GPU feature discovery sets: product name (spaces as '-') and memory in MiB
PRODUCT_LABEL = "nvidia.com/gpu.product"
MEMORY_LABEL = "nvidia.com/gpu.memory"
HOST_LABEL = "chutes.ai/host"
CHUTE_LABEL = "chutes.ai/chute-id"
VERSION_LABEL = "chutes.ai/version"
MANAGED_BY = {"app.kubernetes.io/managed-by": "chutes-host"}
# the labels of the host's own pods (deploy/kubernetes/host.yaml): the only pods a chute's NetworkPolicy lets in
HOST_POD_LABELS = {"app.kubernetes.io/name": "chutes-host"}
KINDS = ("secret", "networkpolicy", "deployment", "service")  # in the order they are applied
# product names GPU feature discovery reports for common data-centre and workstation GPUs; the host adds
# those its cluster's nodes carry, so `include`/`exclude` match what is really there too
KNOWN_PRODUCTS = (
    "NVIDIA-A10",
    "NVIDIA-A10G",
    "NVIDIA-A100-PCIE-40GB",
    "NVIDIA-A100-SXM4-40GB",
    "NVIDIA-A100-80GB-PCIe",
    "NVIDIA-A100-SXM4-80GB",
    "NVIDIA-H100-PCIe",
    "NVIDIA-H100-80GB-HBM3",
    "NVIDIA-H200",
    "NVIDIA-L4",
    "NVIDIA-L40",
    "NVIDIA-L40S",
    "NVIDIA-RTX-A6000",
    "NVIDIA-GeForce-RTX-3090",
    "NVIDIA-GeForce-RTX-4090",
    "Tesla-T4",
    "Tesla-V100-SXM2-16GB",
    "Tesla-V100-SXM2-32GB",
)
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")


class RenderError(ValueError):
    """A chute that cannot be expressed as manifests (e.g. `include` names no GPU the cluster could have)."""


@dataclass(frozen=True)
class PodShape:
    """What the host gives every pod besides the chute's own needs: where and how big."""

    namespace: str = "chutes"
    host_id: str = "chutes"
    cpu: str = "1"
    memory: str = "8Gi"
    drain_seconds: int = 3
    grace_seconds: int = 30


def object_name(slug: str) -> str:
    """Returns the name of a chute's objects: a DNS label (<= 63 characters, starting with a letter) that
    stays unique for slugs that differ only in what a DNS label cannot hold."""
    clean = re.sub(r"[^a-z0-9-]+", "-", slug.lower()).strip("-")
    digest = hashlib.sha256(slug.encode()).hexdigest()[:8]
    return f"chute-{clean[:44].rstrip('-')}-{digest}"


def label_value(text: str) -> str:
    """Returns text as a valid label value (<= 63 characters of [A-Za-z0-9_.-], alphanumeric at both ends)."""
    return _LABEL_VALUE.sub("-", text)[:63].strip("-_.")


def chute_labels(spec: DeploymentSpec, shape: PodShape) -> dict[str, str]:
    """Returns the labels every object of a chute version carries: whose, which chute, which version."""
    return {
        **MANAGED_BY,
        HOST_LABEL: label_value(shape.host_id),
        CHUTE_LABEL: object_name(spec.slug),
        "chutes.ai/user": label_value(spec.owner_name),
        "chutes.ai/chute": label_value(spec.name),
        VERSION_LABEL: str(spec.version),
    }


def selector_labels(slug: str, shape: PodShape) -> dict[str, str]:
    """Returns the labels that select a chute's pods, whatever their version (a Deployment's selector never changes)."""
    return {HOST_LABEL: label_value(shape.host_id), CHUTE_LABEL: object_name(slug)}


def owned_selector(shape: PodShape, slug: str | None = None) -> str:
    """Returns the label selector of this host's objects (of one chute), for list, watch and delete."""
    labels = {HOST_LABEL: label_value(shape.host_id), **({CHUTE_LABEL: object_name(slug)} if slug else {})}
    return ",".join(f"{k}={v}" for k, v in labels.items())


def node_affinity(selector: NodeSelector, products: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Returns the node selector requirements for a chute's GPUs: enough memory per GPU, and the products
    `include` and `exclude` name (matched, as on a single host, against KNOWN_PRODUCTS and `products`)."""
    if selector.is_cpu:
        return []
    min_mib = math.ceil(selector.min_vram_gb_per_gpu * 10**9 / 2**20)
    terms: list[dict[str, Any]] = [{"key": MEMORY_LABEL, "operator": "Gt", "values": [str(min_mib - 1)]}]
    candidates = sorted(set(KNOWN_PRODUCTS) | set(products))
    if selector.include:
        wanted = [p for p in candidates if selector.accepts(p.replace("-", " "))]
        if not wanted:
            raise RenderError(
                f"node_selector include={selector.include} matches no GPU product the cluster's nodes or GPU "
                "feature discovery name; use types like 'a100', 'h100', 'l40s'"
            )
        terms.append({"key": PRODUCT_LABEL, "operator": "In", "values": wanted})
    elif selector.exclude:
        unwanted = [p for p in candidates if any(gpu_type_matches(t, p.replace("-", " ")) for t in selector.exclude)]
        if unwanted:
            terms.append({"key": PRODUCT_LABEL, "operator": "NotIn", "values": unwanted})
    return terms


def render_manifests(
    spec: DeploymentSpec,
    *,
    image: str,
    replicas: int,
    shape: PodShape,
    products: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Takes a chute version, its image and replica count, and returns its Secret, NetworkPolicy, Deployment and
    Service (the policy before the pods, so none runs without it)."""
    import yaml

    from chutes_build.templates import templates_dir

    env = _jinja()
    selector = spec.node_selector
    gpus = selector.gpu_count
    requests = {"cpu": shape.cpu, "memory": shape.memory}
    limits = {"memory": shape.memory}
    if gpus:
        # GPUs are an extended resource: Kubernetes wants requests equal to limits, as integers
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(gpus)
    name = object_name(spec.slug)
    context = {
        "spec": spec,
        "name": name,
        "namespace": shape.namespace,
        "labels": chute_labels(spec, shape),
        "selector": selector_labels(spec.slug, shape),
        "replicas": replicas,
        "image": image,
        "port": CHUTE_PORT,
        "env": [{"name": "CHUTES_SLUG", "value": spec.slug}, {"name": "HOME", "value": HOME}],
        "secret_name": f"{name}-env",
        "secret_data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(spec.env.items())},
        "requests": requests,
        "limits": limits,
        "affinity": node_affinity(selector, products),
        "read_only": bool(spec.manifest.get("read_only_root", True)),
        "home": HOME,
        "run_user": RUN_USER,
        "drain_seconds": shape.drain_seconds,
        "grace_seconds": shape.grace_seconds,
        "host_pods": HOST_POD_LABELS,
        "egress": bool(spec.manifest.get("allow_external_egress", False)),
    }
    folder = templates_dir() / "kubernetes"
    return [yaml.safe_load(env.from_string((folder / f"{kind}.yaml.j2").read_text()).render(context)) for kind in KINDS]


def to_yaml(objects: Sequence[dict[str, Any]]) -> str:
    """Returns manifests as one YAML stream, as `kubectl apply -f -` reads it."""
    import yaml

    return "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objects)


def _jinja() -> Any:
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
