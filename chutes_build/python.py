"""Which Python an image's wheels are fetched for: the flag, `with_python`, the base's tag, or the base itself."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

# A Python version in an image tag: `python:3.12-slim`, `parachutes/base-python:3.12.9`,
# `parachutes/python:3.12`, `org/cuda:12.4-py3.11`, `org/torch:2.3-python3.10`.
TAG_VERSION = re.compile(r"(?:^|[-_.])(?:py|python)?(3\.\d{1,2})(?:\.\d+)?(?=$|[-_])")
VERSION_ONLY = re.compile(r"^(3\.\d{1,2})(?:\.\d+)?(?=$|[-_])")
ASK_PROGRAM = "import sys; print('%d.%d' % sys.version_info[:2])"


@dataclass(frozen=True)
class PythonChoice:
    """The Python X.Y chosen for a build, and why (`reason` completes "Python X.Y: ...")."""

    version: str
    reason: str
    known: bool = True  # False: nothing said which Python the base has; a real build asks it

    def describe(self) -> str:
        return f"Python {self.version} for the wheels: {self.reason}"


def python_from_tag(ref: str) -> str | None:
    """Takes an image reference, and returns the Python X.Y its tag names, or None.

    Only images named for Python (`python`, `base-python`, ...) may give a bare version tag
    (`parachutes/python:3.12`); other images must say `py3.12` or `python3.12` in the tag.
    """
    name, _, tag = ref.split("@", 1)[0].rpartition(":")
    if not name or "/" in tag:
        return None
    if "python" in name.rsplit("/", 1)[-1]:
        match = VERSION_ONLY.match(tag)
        if match:
            return match.group(1)
    for match in TAG_VERSION.finditer(tag):
        prefix = tag[: match.start(1)]
        if prefix.endswith(("py", "python")):
            return match.group(1)
    return None


def choose_python(flag: str | None, image: Any, base_image: str | None, default_base: str) -> PythonChoice:
    """Takes --python, the chute's Image and the base chosen (None: the default), and returns the choice."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = base_image or image.base_image
    if flag:
        return PythonChoice(flag, "from --python")
    if image.python_version:
        return PythonChoice(image.python_version, f"from with_python({image.python_version!r})")
    if base is None:
        return PythonChoice(here, f"this Python's; the default base {default_base} is built with it")
    tagged = python_from_tag(base)
    if tagged:
        return PythonChoice(tagged, f"from the tag of the base image {base}")
    return PythonChoice(here, f"the tag of the base image {base} does not say, so the build asks the image", False)


def python_notes(image: Any, base_image: str | None) -> list[str]:
    """Returns what a user should know about with_python() on this base: it installs nothing here."""
    wanted = image.python_version
    base = base_image or image.base_image
    if not wanted or base is None or base == f"python:{wanted}-slim":
        return []
    tagged = python_from_tag(base)
    if tagged == wanted:
        return []
    if tagged:
        return [
            f"with_python({wanted!r}) but the tag of the base image {base} says Python {tagged}; "
            f"the build stops unless the base has Python {wanted} (drop with_python, or pick a base that has it)"
        ]
    return [
        f"with_python({wanted!r}) does not install Python here (the SDK compiles it from source): "
        f"the base image {base} must have python3 {wanted} with venv, or the build stops at its first step"
    ]


def ask_base_python(client: Any, base_image: str) -> str | None:
    """Runs the base image's python3 once (no network), and returns its X.Y, or None if it has no python3."""
    from chutes_build.engine import translate_errors

    with translate_errors(f"asking the base image {base_image} for its Python"):
        container = client.containers.create(
            base_image, ["python3", "-c", ASK_PROGRAM], network_mode="none", entrypoint=[]
        )
    try:
        container.start()
        outcome = container.wait(timeout=120)
        output = container.logs(stdout=True, stderr=False).decode(errors="replace").strip()
    except Exception:  # a base without python3 fails to start the command: the engine says so
        return None
    finally:
        container.remove(force=True)
    if outcome.get("StatusCode") != 0 or not re.fullmatch(r"3\.\d{1,2}", output):
        return None
    return output
