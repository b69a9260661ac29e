"""The kubernetes executor against a real API server alone (no nodes): what it applies, how the server takes
it, and the errors a user sees when the cluster refuses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from chutes_host.deploy.k8s_render import object_name
from chutes_host.executors.base import ExecutorError
from chutes_host.executors.kubernetes import KubernetesExecutor
from chutes_host.observability.live import LiveDeployment
from tests.conftest import free_port
from tests.host.conftest import CHUTES, cli_env
from tests.k8s.conftest import EXAMPLES, example_spec, host_config

pytestmark = pytest.mark.k8s
IMAGE = "registry.example.com/chutes/example:1"


def owned(api_server, kind: str) -> list[dict]:
    listed = api_server.kubectl(
        "get", kind, "-n", "chutes", "-l", "app.kubernetes.io/managed-by=chutes-host", "-o", "json"
    )
    return json.loads(listed)["items"]


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.iterdir() if (p / f"{p.name}.py").is_file()))
async def test_every_example_is_applied_read_back_and_deleted(api_server, tmp_path: Path, name: str) -> None:
    executor = KubernetesExecutor(host_config(tmp_path, api_server.kubeconfig("host")))
    spec = example_spec(name, tmp_path, image=IMAGE)
    try:
        await executor.prepare(spec, tmp_path / "build.log")
        await executor.apply(spec, 2)
        deployment = json.loads(
            api_server.kubectl("get", "deployment", object_name(spec.slug), "-n", "chutes", "-o", "json")
        )
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert deployment["spec"]["replicas"] == 2
        assert container["image"] == IMAGE
        assert deployment["metadata"]["labels"]["chutes.ai/user"] == spec.owner_name
        assert deployment["metadata"]["labels"]["chutes.ai/version"] == "1"
        gpus = spec.node_selector.gpu_count
        resources = container["resources"]
        # the real server took the GPU request (it refuses one that differs from the limit)
        assert resources["requests"].get("nvidia.com/gpu") == (str(gpus) if gpus else None)
        assert resources["limits"].get("nvidia.com/gpu") == (str(gpus) if gpus else None)
        secret = json.loads(
            api_server.kubectl("get", "secret", f"{object_name(spec.slug)}-env", "-n", "chutes", "-o", "json")
        )
        assert set(secret["data"]) == {"EXAMPLE_SECRET"}
        assert "s3cret" not in json.dumps(deployment)  # secrets stay out of the Deployment
        service = json.loads(api_server.kubectl("get", "service", object_name(spec.slug), "-n", "chutes", "-o", "json"))
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        policy = json.loads(
            api_server.kubectl("get", "networkpolicy", object_name(spec.slug), "-n", "chutes", "-o", "json")
        )
        assert policy["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]

        await executor.scale(spec, 0)
        replicas = api_server.kubectl(
            "get", "deployment", object_name(spec.slug), "-n", "chutes", "-o", "jsonpath={.spec.replicas}"
        )
        assert replicas == "0"
    finally:
        await executor.remove(spec)
        await executor.aclose()
    for kind in ("deployments", "services", "secrets", "networkpolicies"):
        assert [o["metadata"]["name"] for o in owned(api_server, kind)] == []


async def test_a_redeploy_changes_the_pod_template_and_keeps_capacity(api_server, tmp_path: Path) -> None:
    executor = KubernetesExecutor(host_config(tmp_path, api_server.kubeconfig("host")))
    first = example_spec("hello", tmp_path, image=IMAGE)
    second = example_spec("hello", tmp_path, image=IMAGE.replace(":1", ":2"), version=2)
    try:
        for spec in (first, second):
            await executor.prepare(spec, tmp_path / "build.log")
            await executor.apply(spec, 3)
        deployment = json.loads(
            api_server.kubectl("get", "deployment", object_name(first.slug), "-n", "chutes", "-o", "json")
        )
        assert deployment["metadata"]["generation"] == 2
        assert deployment["spec"]["template"]["metadata"]["labels"]["chutes.ai/version"] == "2"
        assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    finally:
        await executor.remove(second)
        await executor.aclose()


async def test_a_field_another_manager_changed_is_a_conflict_not_overwritten(api_server, tmp_path: Path) -> None:
    executor = KubernetesExecutor(host_config(tmp_path, api_server.kubeconfig("host")))
    spec = example_spec("hello", tmp_path, image=IMAGE)
    name = object_name(spec.slug)
    try:
        await executor.prepare(spec, tmp_path / "build.log")
        await executor.apply(spec, 1)
        api_server.kubectl("set", "image", f"deployment/{name}", "chute=someone/else:9", "-n", "chutes")
        with pytest.raises(ExecutorError) as caught:
            await executor.apply(spec, 1)
        assert "another manager changed fields the host sets" in str(caught.value)
        assert "kubectl" in str(caught.value)
        image = api_server.kubectl(
            "get", "deployment", name, "-n", "chutes", "-o", "jsonpath={.spec.template.spec.containers[0].image}"
        )
        assert image == "someone/else:9"
    finally:
        await executor.remove(spec)
        await executor.aclose()


async def test_an_identity_without_the_role_gets_a_clear_refusal(api_server, tmp_path: Path) -> None:
    executor = KubernetesExecutor(host_config(tmp_path, api_server.kubeconfig("nobody")))
    spec = example_spec("hello", tmp_path, image=IMAGE)
    try:
        await executor.prepare(spec, tmp_path / "build.log")
        with pytest.raises(ExecutorError) as caught:
            await executor.apply(spec, 1)
    finally:
        await executor.aclose()
    message = str(caught.value)
    assert "may not apply Secret" in message and "namespace 'chutes'" in message
    assert "deploy/kubernetes/rbac.yaml" in message
    assert owned(api_server, "secrets") == []


def test_the_host_refuses_to_start_on_a_missing_namespace(api_server, tmp_path: Path) -> None:
    result = subprocess.run(
        [CHUTES, "host", "serve", "--executor", "kubernetes", "--kubeconfig", str(api_server.kubeconfig("host")),
         "--namespace", "nowhere", "--data-dir", str(tmp_path / "data"), "--port", str(free_port())],
        env=cli_env(tmp_path), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "namespace 'nowhere' does not exist" in result.stderr
    assert "kubectl create namespace nowhere" in result.stderr


async def test_the_watch_reports_a_deployment_without_pods_as_starting(api_server, tmp_path: Path) -> None:
    """With no controller-manager nothing makes pods: the chute stays `starting`, never `cold` or ready."""
    import asyncio

    executor = KubernetesExecutor(host_config(tmp_path, api_server.kubeconfig("host")))
    spec = example_spec("hello", tmp_path, image=IMAGE)
    dep = LiveDeployment(spec=spec, phase="starting")
    try:
        await executor.prepare(spec, tmp_path / "build.log")
        await executor.apply(spec, 1)
        watch = asyncio.create_task(executor.watch(dep, on_ready=lambda: asyncio.sleep(0)))
        await asyncio.sleep(1)
        assert dep.phase == "starting" and dep.instances == []
        watch.cancel()
    finally:
        await executor.remove(spec)
        await executor.aclose()


@pytest.mark.engine
def test_a_chute_built_here_is_pushed_to_the_registry_the_cluster_pulls_from(
    api_server, engine, tmp_path: Path
) -> None:
    import os

    import httpx

    from chutes_build.wheel import wheel_cache_dir
    from tests.host.conftest import Host, make_project, wait_for

    registry = os.environ.get("CHUTES_TEST_REGISTRY", "127.0.0.1:5000")
    env = {"CHUTES_WHEEL_CACHE": str(wheel_cache_dir())}
    if os.environ.get("CHUTES_BASE_IMAGE"):
        env["CHUTES_BASE_IMAGE"] = os.environ["CHUTES_BASE_IMAGE"]
    args = ["--executor", "kubernetes", "--kubeconfig", str(api_server.kubeconfig("host")), "--registry", registry]
    host = Host(data_dir=tmp_path / "data", home=tmp_path / "home", port=free_port(), extra_args=args, env=env)
    host.home.mkdir()
    host.start()
    try:
        key = host.add_user("alice")
        project = make_project(tmp_path / "project", "k8s_idle.py")
        deployed = host.cli("deploy", "k8s_idle:chute", "--no-wait", key=key, cwd=project)
        assert deployed.returncode == 0, deployed.stderr
        name = object_name("alice-k8s-idle")

        def applied_image() -> str:
            got = api_server.kubectl("get", "deployment", name, "-n", "chutes", "-o",
                                     "jsonpath={.spec.template.spec.containers[0].image}", check=False)  # fmt: skip
            return got.strip()

        image = wait_for(applied_image, timeout=300, what="the built image to be applied", host=host)
        repository, _, tag = image.rpartition(":")
        assert repository == f"{registry}/chutes/alice-k8s-idle" and tag.startswith("v1-")
        # an HMAC with the host's key, not the host id every tenant's own build log shows
        assert len(tag) == len("v1-") + 20 and tag[3:] not in host.log_text() + str(host.data_dir)
        tags = httpx.get(f"http://{registry}/v2/chutes/alice-k8s-idle/tags/list", timeout=10).json()["tags"]
        assert tag in tags  # what the cluster will pull is in the registry
        assert host.cli("chutes", "delete", "k8s-idle", "--yes", key=key).returncode == 0
        assert applied_image() == ""
    finally:
        host.stop()


async def test_a_gpu_type_no_node_has_fails_the_apply_with_a_message(api_server, tmp_path: Path) -> None:
    from dataclasses import replace

    executor = KubernetesExecutor(host_config(tmp_path, api_server.kubeconfig("host")))
    spec = example_spec("gpu_model", tmp_path, image=IMAGE)
    spec = replace(spec, manifest=dict(spec.manifest, node_selector={"gpu_count": 1, "include": ["b9000"]}))
    try:
        await executor.prepare(spec, tmp_path / "build.log")
        with pytest.raises(ExecutorError, match=r"include=\['b9000'\] matches no GPU product"):
            await executor.apply(spec, 1)
    finally:
        await executor.aclose()
    assert owned(api_server, "deployments") == []


async def test_two_hosts_sharing_a_namespace_never_take_each_others_objects(api_server, tmp_path: Path) -> None:
    first = KubernetesExecutor(host_config(tmp_path / "a", api_server.kubeconfig("host")))
    second = KubernetesExecutor(host_config(tmp_path / "b", api_server.kubeconfig("host")))
    spec = example_spec("hello", tmp_path, image=IMAGE)
    try:
        for executor in (first, second):
            await executor.prepare(spec, tmp_path / "build.log")
        await first.apply(spec, 1)
        with pytest.raises(ExecutorError, match="another manager changed fields the host sets"):
            await second.apply(spec, 1)
        await second.remove(spec)  # the same chute name on the other host: nothing of it is this host's
        assert [o["metadata"]["name"] for o in owned(api_server, "deployments")] == [object_name(spec.slug)]
    finally:
        await first.remove(spec)
        await first.aclose()
        await second.aclose()
    assert owned(api_server, "deployments") == []
