"""Renders the `chutes init` templates into a new directory, all at once or not at all."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from chutes_build.templates import templates_dir
from chutes_cli.display import current_umask
from chutes_cli.errors import CLIError

TEMPLATES_DIR = templates_dir() / "init"
COMMON = "_common"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}")
SUMMARIES = {
    "basic": "one JSON cord, `/hello`, with a startup hook.",
    "stream": "a cord, `/generate`, that streams tokens as server-sent events.",
    "passthrough": "a cord, `/v1/generate`, forwarded to a model server the chute starts beside itself.",
    "upload": "a cord, `/analyze`, that takes a file upload.",
}
INVOKE_EXAMPLES = {
    "basic": 'chutes invoke /hello --json \'{"name": "Ada"}\'',
    "stream": 'chutes invoke /generate --json \'{"prompt": "tokens arrive one by one"}\'',
    "passthrough": 'chutes invoke /v1/generate --json \'{"prompt": "hello"}\'',
    "upload": "chutes invoke /analyze -F file=@README.md",
}


def template_names() -> list[str]:
    """Returns the templates `chutes init` offers."""
    return list(SUMMARIES)


def check_name(name: str) -> str:
    """Returns the chute name, or fails saying which characters a name may hold."""
    if not NAME_PATTERN.fullmatch(name):
        raise CLIError(
            f"invalid chute name {name!r}: use lowercase letters, digits, '-' and '_', starting with a "
            "letter (e.g. my-chute).",
            exit_code=2,
        )
    return name


def render_scaffold(name: str, *, template: str, username: str, parent: Path) -> Path:
    """Renders `template` into parent/name and returns that directory; nothing is left on failure."""
    import jinja2

    check_name(name)
    check_name(username)
    target = parent / name
    if target.exists():
        raise CLIError(f"{target} already exists. Choose another name, or remove it first.")
    if not parent.is_dir():
        raise CLIError(f"directory {parent} does not exist. Create it first, or pass another --dir.", exit_code=2)
    module = name.replace("-", "_")
    context = {
        "name": name,
        "module": module,
        "username": username,
        "tag": "0.1.0",
        "template": template,
        "summary": SUMMARIES[template],
        "invoke_example": INVOKE_EXAMPLES[template],
    }
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
    try:
        for source in sorted((TEMPLATES_DIR / COMMON).glob("*.j2")) + sorted((TEMPLATES_DIR / template).glob("*.j2")):
            relative = source.relative_to(TEMPLATES_DIR).as_posix()
            filename = source.name.removesuffix(".j2").replace("__module__", module)
            (staging / filename).write_text(environment.get_template(relative).render(context), encoding="utf-8")
        staging.chmod(0o777 & ~current_umask())
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
