"""An `Image` as plain JSON data: the client ships it in the deploy manifest, the host reads it back.

The host never imports a chute's module to learn its image. Reading the data back replays it
through the `Image` methods, so hostile data meets the same checks as a chute author's calls.
"""

from __future__ import annotations

from typing import Any

from chutes.exceptions import ChuteDefinitionError
from chutes.image import Add, AptInstall, Entrypoint, Env, Image, Label, PipInstall, RunCommand, User, Workdir

MAX_DIRECTIVES = 200


class RecipeError(ValueError):
    """Image data that does not describe a valid `Image`, with a message naming the step."""


def image_to_data(image: Image) -> dict[str, Any]:
    """Takes an Image, and returns it as JSON-able data (its directives in call order)."""
    steps: list[dict[str, Any]] = []
    for d in image.directives:
        if isinstance(d, RunCommand):
            steps.append({"run": d.command if isinstance(d.command, str) else list(d.command)})
        elif isinstance(d, AptInstall):
            steps.append({"apt": list(d.packages)})
        elif isinstance(d, PipInstall):
            steps.append({"pip": list(d.packages)} if d.packages else {"pip_requirements": d.requirements_file})
        elif isinstance(d, Env):
            steps.append({"env": [d.key, d.value]})
        elif isinstance(d, Workdir):
            steps.append({"workdir": d.path})
        elif isinstance(d, User):
            steps.append({"user": d.user})
        elif isinstance(d, Add):
            steps.append({"add": [d.src, d.dest, d.chown, d.chmod] if d.chown or d.chmod else [d.src, d.dest]})
        elif isinstance(d, Entrypoint):
            steps.append({"entrypoint": list(d.args)})
        elif isinstance(d, Label):
            steps.append({"label": [d.key, d.value]})
        else:
            raise TypeError(f"unknown directive {d!r}")
    return {
        "username": image.username,
        "name": image.name,
        "tag": image.tag,
        "base_image": image.base_image,
        "python_version": image.python_version,
        "steps": steps,
    }


def image_from_data(data: Any) -> Image:
    """Takes data from `image_to_data`, and returns the Image; raises RecipeError naming the bad step."""
    if not isinstance(data, dict):
        raise RecipeError("the image must be a JSON object with username, name, tag, base_image and steps")
    steps = data.get("steps", [])
    if not isinstance(steps, list) or len(steps) > MAX_DIRECTIVES:
        raise RecipeError(f"image steps must be a list of at most {MAX_DIRECTIVES} objects")
    try:
        image = Image(data.get("username"), data.get("name"), data.get("tag"))
        if data.get("base_image") is not None:
            image.from_base(data["base_image"])
        if data.get("python_version") is not None:
            image.with_python(data["python_version"])
    except ChuteDefinitionError as exc:
        raise RecipeError(f"image: {exc}") from None
    for number, step in enumerate(steps, start=1):
        if not isinstance(step, dict) or len(step) != 1:
            raise RecipeError(f"image step {number}: expected an object with one key, like {{'apt': ['git']}}")
        ((kind, value),) = step.items()
        try:
            replay(image, kind, value)
        except (ChuteDefinitionError, RecipeError) as exc:
            raise RecipeError(f"image step {number}: {exc}") from None
        except (TypeError, ValueError):
            raise RecipeError(f"image step {number}: {kind!r} got a value of the wrong shape: {value!r:.200}") from None
    return image


def replay(image: Image, kind: str, value: Any) -> None:
    """Applies one step to the image through the Image method that records it."""
    if kind == "run":
        image.run_command(value)
    elif kind == "apt":
        image.apt_install(value)
    elif kind == "pip":
        if isinstance(value, str):
            raise TypeError
        image.pip_install(value)
    elif kind == "pip_requirements":
        if not isinstance(value, str) or not value.endswith(".txt"):
            raise TypeError
        image.pip_install(value)
    elif kind == "env":
        key, text = value
        image.with_env(key, text)
    elif kind == "workdir":
        image.set_workdir(value)
    elif kind == "user":
        image.set_user(value)
    elif kind == "add":
        src, dest, chown, chmod = value if len(value) == 4 else (*value, None, None)
        image.add(src, dest, chown=chown, chmod=chmod)
    elif kind == "entrypoint":
        if isinstance(value, str):
            raise TypeError
        image.with_entrypoint(*value)
    elif kind == "label":
        key, text = value
        image.with_label(key, text)
    else:
        raise RecipeError(f"unknown image step {kind!r}")
