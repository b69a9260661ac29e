"""Fixtures for the kubernetes executor's tests: a real API server (and a real two-node cluster) per session.

They need the binaries `bash .ci/k8s.sh` builds (it prints CHUTES_K8S_BIN, which scripts/test exports). Without
them the tests skip, saying why; under CI they fail.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from chutes_host.config import HostConfig
from chutes_host.deploy.spec import DeploymentSpec
from tests.k8s.cluster import ApiServer, Cluster, ClusterError, Node

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
RBAC = ROOT / "deploy" / "kubernetes" / "rbac.yaml"
# binds deploy/kubernetes/rbac.yaml's roles to the test's `host` user too, as an admin would for a host
# that runs outside the cluster with a kubeconfig
HOST_USER_BINDINGS = """
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: chutes-host-user, namespace: chutes}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: chutes-host}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: chutes-host}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: chutes-host-user-read-nodes}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: chutes-host-read-nodes}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: chutes-host}]
"""


def k8s_bin() -> Path:
    """Returns the directory of the Kubernetes binaries; skips (fails under CI) when there is none."""
    found = os.environ.get("CHUTES_K8S_BIN")
    reason = None
    if not found:
        reason = "CHUTES_K8S_BIN is not set: run `bash .ci/k8s.sh` (root, Debian) and export what it prints"
    elif not (Path(found) / "kube-apiserver").is_file():
        reason = f"CHUTES_K8S_BIN={found} holds no kube-apiserver; run `bash .ci/k8s.sh` again"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so the Kubernetes tests must run)")
        pytest.skip(reason)
    return Path(found)


def give_up(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so the Kubernetes tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def api_server(tmp_path_factory) -> Iterator[ApiServer]:
    """etcd and kube-apiserver on 127.0.0.1, with the `chutes` namespace and the host's RBAC applied."""
    server = ApiServer(k8s_bin(), tmp_path_factory.mktemp("apiserver"))
    try:
        server.start()
        server.kubectl("apply", "-f", str(RBAC))
        server.kubectl("apply", "-f", "-", input=HOST_USER_BINDINGS)
    except ClusterError as exc:
        server.stop()
        give_up(f"the API server could not start here: {exc}")
    yield server
    server.stop()


def host_config(data_dir: Path, kubeconfig: Path, **kwargs) -> HostConfig:
    """Returns a host config for the kubernetes executor on the test cluster (small pods: two cores are shared)."""
    kwargs.setdefault("k8s_cpu", "50m")
    kwargs.setdefault("k8s_memory", "256Mi")
    return HostConfig(data_dir=data_dir, executor="kubernetes", kubeconfig=str(kubeconfig), **kwargs)


def example_spec(name: str, directory: Path, *, image: str, version: int = 1) -> DeploymentSpec:
    """Returns the spec a host makes of an example chute deployed with --image, as `chutes deploy` bundles it."""
    manifest = dict(example_manifest(name), deploy_image=image)
    spec = DeploymentSpec(
        slug=manifest["slug"],
        name=manifest["name"],
        owner_id=1,
        owner_name=manifest["username"],
        version=version,
        directory=directory / manifest["slug"] / str(version),
        entrypoint=manifest["entrypoint"],
        public=True,
        max_instances=1,
        manifest=manifest,
    )
    return replace(spec, env={"EXAMPLE_SECRET": "s3cret"})


@functools.cache
def example_manifest(name: str) -> dict:
    """Returns the manifest `chutes deploy` makes of an example (loaded once: its module stays imported)."""
    from chutes_cli.commands.deploy import prepare_bundle

    project = Path(tempfile.mkdtemp(prefix="chutes-k8s-example-")) / name
    shutil.copytree(EXAMPLES / name, project)
    # as on a laptop without the model's packages: deploy stands in for what requirements.txt names
    requirements = project / "requirements.txt"
    if not requirements.exists():
        requirements.write_text("numpy\n")
    try:
        return prepare_bundle(f"{project / name}.py:chute", None, public=None).manifest
    finally:
        shutil.rmtree(project.parent, ignore_errors=True)


TEST_IMAGE = "localhost/chutes-k8s-hello:test"
CRASH_IMAGE = "localhost/chutes-k8s-crash:test"
HOST_IMAGE = "localhost/chutes-k8s-host:test"
# What deploy/kubernetes/host.yaml tells a user to run: an image with `pip install 'chutes[kubernetes]'`. Here
# chutes is this checkout's wheel, and every dependency a wheel fetched on this machine (no network in RUN).
HOST_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY wheels /wheels
RUN pip install --no-index --find-links /wheels 'chutes[kubernetes]' && chutes --help >/dev/null
USER 1000
"""
HOST_SOURCES = (
    "pyproject.toml",
    "README.md",
    "Dockerfile.base",
    "runtime",
    "chutes_build",
    "chutes_cli",
    "chutes_host",
    "templates",
)


@pytest.fixture(scope="session")
def cluster(engine, tmp_path_factory) -> Iterator[Cluster]:
    """Two nodes, n1 with 1 fake GPU and n2 with 2, with the test chutes' images and the host's image loaded into
    both; the `chutes` namespace and the host's RBAC applied."""
    binaries = k8s_bin()
    if os.geteuid() != 0:
        give_up("the two-node cluster needs root (network namespaces, dockerd, kubelet)")
    build_test_image(tmp_path_factory.mktemp("k8s-image"), "k8s_hello", TEST_IMAGE)
    build_test_image(tmp_path_factory.mktemp("k8s-image"), "k8s_crash", CRASH_IMAGE)
    build_host_image(tmp_path_factory.mktemp("k8s-host-image"), HOST_IMAGE)
    cache = Path(os.environ.get("CHUTES_CI_CACHE") or Path.home() / ".cache" / "chutes-ci") / "k8s-nodes"
    nodes = [Node("n1", 1, gpus=1), Node("n2", 2, gpus=2)]
    made = Cluster(binaries, tmp_path_factory.mktemp("cluster"), cache, nodes)
    try:
        made.start([TEST_IMAGE, CRASH_IMAGE, HOST_IMAGE], engine_host=os.environ["DOCKER_HOST"])
        made.api.kubectl("apply", "-f", str(RBAC))
        made.api.kubectl("apply", "-f", "-", input=HOST_USER_BINDINGS)
    except ClusterError as exc:
        made.stop()
        give_up(f"the two-node cluster could not start here: {exc}")
    yield made
    made.stop()


def build_test_image(work: Path, module: str, tag: str) -> None:
    """Builds a fixture chute's image with `chutes build` on the shared engine."""
    shutil.copy(ROOT / "tests" / "fixtures" / "chutes" / f"{module}.py", work / f"{module}.py")
    chutes = str(Path(sys.executable).with_name("chutes"))
    result = subprocess.run(
        [chutes, "build", f"{module}:chute", "--tag", tag], cwd=work, capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        pytest.fail(f"building the test chute's image failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def build_host_image(work: Path, tag: str) -> None:
    """Builds the host's own image (this checkout, with the kubernetes extra) on the shared engine, once per
    change of its sources, dependencies or base image: the image carries their hash as a label, and a matching
    image is kept."""
    from chutes_build.wheel import fetch_wheelhouse, runtime_pins

    engine = os.environ["DOCKER_HOST"]
    base = os.environ.get("CHUTES_BASE_IMAGE", "localhost/chutes-base:bookworm")
    pins = [pin for pin in runtime_pins(["chutes[kubernetes]"]) if not pin.startswith("chutes==")]
    digest = hashlib.sha256("\n".join([HOST_DOCKERFILE, image_id(engine, base), *pins]).encode())
    for name in HOST_SOURCES:
        top = ROOT / name
        for path in sorted([top] if top.is_file() else top.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    source = digest.hexdigest()[:16]
    have = subprocess.run(
        ["docker", "-H", engine, "image", "inspect", "-f", '{{index .Config.Labels "chutes.test.source"}}', tag],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    if have == source:
        return
    # a clean copy: a wheel built in the checkout would pick up whatever an earlier build left in build/
    tree = work / "src"
    tree.mkdir()
    for name in HOST_SOURCES:
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, tree / name)
        else:
            shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    context = work / "context"
    (context / "wheels").mkdir(parents=True)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(context / "wheels"),
         str(tree)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if built.returncode != 0:
        pytest.fail(f"building the chutes wheel for the host's image failed:\n{built.stderr[-3000:]}")
    for wheel in fetch_wheelhouse(pins).glob("*.whl"):
        shutil.copy(wheel, context / "wheels")
    (context / "Dockerfile").write_text(HOST_DOCKERFILE)
    before = image_id(engine, tag)
    result = subprocess.run(
        ["docker", "-H", engine, "build", "--network", "none", "--build-arg", f"BASE_IMAGE={base}",
         "--label", f"chutes.test.source={source}", "-t", tag, str(context)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.fail(f"building the host's image failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    if before and image_id(engine, tag) != before:  # the build it replaces (the nodes prune theirs)
        subprocess.run(["docker", "-H", engine, "rmi", before], capture_output=True)


def image_id(engine: str, image: str) -> str:
    """Returns the image's ID on the engine, or "" when it has none."""
    argv = ["docker", "-H", engine, "image", "inspect", "-f", "{{.Id}}", image]
    inspected = subprocess.run(argv, capture_output=True, text=True)
    return inspected.stdout.strip() if inspected.returncode == 0 else ""
