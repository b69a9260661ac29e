"""Renders a chute and its `Image` into a Dockerfile and a .dockerignore from `templates/`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chutes.image import (
    Add,
    AptInstall,
    Entrypoint,
    Env,
    Image,
    Label,
    PipInstall,
    RunCommand,
    User,
    Workdir,
)
from chutes_build.templates import templates_dir

TEMPLATES_DIR = templates_dir()
DEFAULT_BASE_IMAGE = "localhost/chutes-base:bookworm"
PORT = 8000
CODE_DIR = "/app"
RUN_USER = "chutes"
LABEL_PREFIX = "ai.chutes."


@dataclass(frozen=True)
class ChuteSpec:
    """What the Dockerfile needs to know about a chute, independent of how it was loaded."""

    slug: str
    module: str  # dotted module name relative to the build context, e.g. 'app' or 'pkg.app'
    attr: str
    cords: tuple[dict[str, Any], ...]
    node_selector: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.module}:{self.attr}"


def quote_value(value: str) -> str:
    """Quotes an ENV or LABEL value for a Dockerfile: literal, `$` not expanded."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def exec_form(args: list[str] | tuple[str, ...]) -> str:
    """Renders an exec-form argument list, a JSON array of strings."""
    return json.dumps(list(args), ensure_ascii=False)


def render_run(command: str | tuple[str, ...]) -> str:
    """Renders a RUN body: shell form for one line, `/bin/sh -ec` exec form for several lines."""
    if isinstance(command, tuple):
        return exec_form(command)
    if "\n" in command or command.lstrip().startswith("["):
        return exec_form(["/bin/sh", "-ec", command])
    return command


def prelude(python_version: str) -> str:
    """The shell command that makes any python3 base usable: venv, user, matching Python."""
    major, minor = python_version.split(".")
    check = (
        "import sys; v = '%d.%d' % sys.version_info[:2]; "
        f"sys.exit(0 if v == '{python_version}' else 'this base image has Python ' + v + "
        f"' but the wheels were fetched for Python {python_version}: pass --python ' + v)"
    )
    assert major.isdigit() and minor.isdigit()
    missing = (
        f"echo 'this base image has no python3: start from one with Python {python_version} and venv "
        f"(e.g. python:{python_version}-slim) or install them in your base' >&2; exit 1"
    )
    # the venv belongs to the chute's user, so `set_user("chutes")` then `pip_install` works (as in the SDK)
    return (
        f"set -e; test -x /opt/venv/bin/python || command -v python3 >/dev/null || {{ {missing}; }}; "
        f"id -u {RUN_USER} >/dev/null 2>&1 || useradd --create-home --uid 1000 --shell /bin/sh {RUN_USER}; "
        "test -x /opt/venv/bin/python || python3 -m venv /opt/venv; "
        f'[ "$(stat -c %U /opt/venv)" = {RUN_USER} ] || chown -R {RUN_USER}:{RUN_USER} /opt/venv; '
        f'/opt/venv/bin/python -c "{check}"'
    )


def describe_directives(image: Image | None) -> list[dict[str, Any]]:
    """Turns the image's directives into plain records for the template, numbering pip folders."""
    records: list[dict[str, Any]] = []
    pip_count = 0
    for d in image.directives if image else ():
        if isinstance(d, RunCommand):
            records.append({"kind": "run", "command": render_run(d.command)})
        elif isinstance(d, AptInstall):
            records.append({"kind": "apt", "packages": d.packages})
        elif isinstance(d, PipInstall):
            pip_count += 1
            records.append({"kind": "pip", "folder": f"pip-{pip_count}"})
        elif isinstance(d, Env):
            records.append({"kind": "env", "key": d.key, "value": d.value})
        elif isinstance(d, Workdir):
            records.append({"kind": "workdir", "path": d.path})
        elif isinstance(d, User):
            records.append({"kind": "user", "user": d.user})
        elif isinstance(d, Add):
            flags = [f"--chown={d.chown}"] if d.chown else []
            flags += [f"--chmod={d.chmod}"] if d.chmod else []
            records.append({"kind": "add", "src": f"app/{d.src}", "dest": d.dest, "flags": flags})
        elif isinstance(d, Label):
            records.append({"kind": "label", "key": d.key, "value": d.value})
        elif not isinstance(d, Entrypoint):
            raise TypeError(f"unknown directive {d!r}")
    return records


def chute_labels(spec: ChuteSpec) -> list[tuple[str, str]]:
    """The metadata labels every chute image carries, compact JSON with sorted keys."""

    def compact(value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    return [
        (f"{LABEL_PREFIX}slug", spec.slug),
        (f"{LABEL_PREFIX}ref", spec.ref),
        (f"{LABEL_PREFIX}cords", compact(list(spec.cords))),
        (f"{LABEL_PREFIX}node-selector", compact(spec.node_selector)),
    ]


def environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["dq"] = quote_value
    env.filters["exec_form"] = exec_form
    return env


def render_dockerfile(
    spec: ChuteSpec,
    image: Image | None,
    *,
    runtime_wheel: str,
    base_image: str | None = None,
    python_version: str = "3.11",
    sdk: list[str] | tuple[str, ...] = (),
) -> str:
    """Takes a chute spec and its Image, and returns the Dockerfile text (same input, same bytes)."""
    users = [d.user for d in image.directives if isinstance(d, User)] if image else []
    workdirs = [d.path for d in image.directives if isinstance(d, Workdir)] if image else []
    entrypoint = image.entrypoint if image else None
    serve = ["python", "-m", "chutes.serve", spec.ref, "--host", "0.0.0.0", "--port", str(PORT)]
    probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{PORT}/_ready', timeout=2)"
    return (
        environment()
        .get_template("Dockerfile.j2")
        .render(
            slug=spec.slug,
            base_image=base_image or (image.base_image if image else None) or DEFAULT_BASE_IMAGE,
            prelude=prelude(python_version),
            directives=describe_directives(image),
            sdk=list(sdk),
            runtime_wheel=runtime_wheel,
            code_dir=CODE_DIR,
            workdir=workdirs[-1] if workdirs else CODE_DIR,
            labels=chute_labels(spec),
            user=users[-1] if users else RUN_USER,
            venv_user=RUN_USER,
            port=PORT,
            entrypoint=list(entrypoint.args) if entrypoint else None,
            healthcheck=["python", "-c", probe],
            serve=serve,
        )
    )


def dockerignore_patterns(lines: list[str]) -> list[str]:
    """Rewrites ignore lines for the context layout, where the user's files sit under app/."""
    out = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        body = (line[1:] if negated else line).strip().rstrip("/")
        anchored = "/" in body
        path = f"app/{body.lstrip('/')}" if anchored else f"app/**/{body}"
        out.append(("!" if negated else "") + path)
    return out


def render_dockerignore(lines: list[str]) -> str:
    """Returns the .dockerignore text for the given ignore lines."""
    return environment().get_template("dockerignore.j2").render(patterns=dockerignore_patterns(lines))
