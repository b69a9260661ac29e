"""The Image methods and keywords the SDK has: recorded, carried through the deploy recipe, rendered."""

from __future__ import annotations

import pytest

from chutes.exceptions import ChuteDefinitionError
from chutes.image import Add, Image, Label, RunCommand
from chutes_build.dockerfile import ChuteSpec, render_dockerfile
from chutes_build.recipe import image_from_data, image_to_data

SPEC = ChuteSpec(slug="me-demo", module="app", attr="chute", cords=(), node_selector={})


def sdk_image() -> Image:
    return (
        Image(username="MyUser", name="Demo", tag="1.0", readme="## Demo")
        .from_base("parachutes/python:3.12")
        .from_base("python:3.12-slim")
        .with_python("3.12.4")
        .with_maintainer("me@example.com")
        .apt_remove("git curl")
        .add(source="weights", dest="/app/weights", chown="chutes:chutes", chmod="0640")
    )


def test_sdk_methods_record_what_they_say() -> None:
    image = sdk_image()
    assert (image.ref, image.base_image, image.python_version, image.readme) == (
        "myuser/demo:1.0", "python:3.12-slim", "3.12", "## Demo",
    )  # fmt: skip
    assert image.directives == (
        Label("maintainer", "me@example.com"),
        RunCommand("apt-get remove -y --purge git curl && apt-get autoremove -y"),
        Add("weights", "/app/weights", "chutes:chutes", "0640"),
    )
    assert image.uid == Image("myuser", "demo", "1.0").uid != Image("myuser", "demo", "1.1").uid


def test_the_deploy_recipe_carries_them_to_the_host() -> None:
    image = sdk_image()
    assert image_from_data(image_to_data(image)) == image


def test_they_render_into_the_dockerfile() -> None:
    text = render_dockerfile(SPEC, sdk_image(), runtime_wheel="chutes-0.1.0-py3-none-any.whl", python_version="3.12")
    assert 'COPY --chown=chutes:chutes --chmod=0640 ["app/weights", "/app/weights"]' in text
    assert 'LABEL maintainer="me@example.com"' in text
    assert "RUN apt-get remove -y --purge git curl && apt-get autoremove -y" in text


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Image("me", "x", "1").with_python("3"), "with_python(): '3' is not a Python 3 version"),
        (lambda: Image("me", "x", "1").add("a", "/a", source="b"), "give the source once"),
        (lambda: Image("me", "x", "1").add(dest="/a"), "give the source and the destination"),
        (lambda: Image("me", "x", "1").add("a", "/a", chmod="999"), "chmod '999' is not an octal mode"),
        (lambda: Image("me", "x", "1").add("a", "/a", chown="root; rm"), "chown 'root; rm' is not a user"),
        (lambda: Image("me", "x", "1").apt_remove(["bad name"]), "'bad name' is not a Debian package name"),
        (lambda: Image("me", "x", "1").with_maintainer("a\nb"), "spans lines"),
    ],
)
def test_bad_arguments_are_refused_with_the_fix(make, message) -> None:
    with pytest.raises(ChuteDefinitionError) as info:
        make()
    assert message in str(info.value)


def test_a_recipe_with_a_bad_add_mode_is_refused() -> None:
    from chutes_build.recipe import RecipeError

    data = image_to_data(Image("me", "x", "1"))
    data["steps"] = [{"add": ["a", "/a", None, "u+rwx"]}]
    with pytest.raises(RecipeError, match="image step 1: .*chmod 'u\\+rwx'"):
        image_from_data(data)


def test_with_python_picks_the_base_and_the_wheels(tmp_path) -> None:
    from chutes.loader import load_chute
    from chutes_build.plan import plan_build

    (tmp_path / "python_pick.py").write_text(
        "from chutes.chute import Chute\nfrom chutes.image import Image\n"
        "chute = Chute(username='me', name='x', image=Image('me', 'x', '1').with_python('3.12'))\n"
    )
    ref = f"{tmp_path / 'python_pick.py'}:chute"
    plan = plan_build(load_chute(ref), ref, fetch_wheels=False)
    assert plan.base_image == "python:3.12-slim"
    assert "sys.exit(0 if v == '3.12'" in plan.dockerfile
