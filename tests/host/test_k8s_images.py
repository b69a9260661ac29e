"""The host's one image check, with the repositories a Kubernetes host keeps chutes' images in: its engine's and
the registry its nodes pull from (the attacks through a real host are in tests/k8s/test_tenant_isolation.py)."""

from __future__ import annotations

import pytest

from chutes_host.deploy.deployments import DeployError, check_image_ref, manifest_images

REGISTRY = "registry.example:5000"
OWN = (f"{REGISTRY}/chutes/alice-hello:",)
RESERVED = ("localhost/chutes-host/", f"{REGISTRY}/chutes/")


@pytest.mark.parametrize(
    "ref",
    [
        f"{REGISTRY}/chutes/bob-hello:v1-0123",
        "REGISTRY.Example:5000/chutes/bob-hello:v1-0123",  # registry names are case-insensitive
        f"{REGISTRY}/chutes/bob-hello@sha256:{'ab' * 32}",
        f"{REGISTRY}/chutes/alice-hello-2:v1",  # a longer slug that starts like hers is another chute
        "localhost/chutes-host/0123456789ab/alice-hello:v1",  # the engine's copies are not hers to name here
    ],
)
def test_another_chutes_image_is_refused_with_403(ref: str) -> None:
    with pytest.raises(DeployError, match="belongs to another chute; use your own image") as caught:
        check_image_ref(ref, own=OWN, reserved=RESERVED, what="the image to run")
    assert caught.value.status == 403


def test_image_ids_and_non_references_are_refused_with_400() -> None:
    for ref, why in (("sha256:" + "cd" * 32, "looks like an image id"), ("Not A Ref", "is not an image reference")):
        with pytest.raises(DeployError, match=why) as caught:
            check_image_ref(ref, own=OWN, reserved=RESERVED, what="the base image")
        assert caught.value.status == 400


def test_own_and_public_images_pass() -> None:
    for ref in (f"{REGISTRY}/chutes/alice-hello:v2-ff", "python:3.11-slim", f"{REGISTRY}/team/model:1"):
        check_image_ref(ref, own=OWN, reserved=RESERVED, what="the image to run")


def test_the_images_a_manifest_names() -> None:
    recipe = {"base_image": "python:3.12-slim"}
    assert manifest_images({"image": "me/x:1"}) == [("me/x:1", "the image to run")]
    assert manifest_images({"build_image": True, "image_recipe": recipe}) == [("python:3.12-slim", "the base image")]
    assert manifest_images({"build_image": True, "image_recipe": recipe, "deploy_image": "me/x:2"}) == [
        ("me/x:2", "the image to run"),
        ("python:3.12-slim", "the base image"),
    ]
