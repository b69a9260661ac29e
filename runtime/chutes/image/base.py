"""The `Image` DSL: a chainable, validated record of how to build a chute's container image.

It only records directives; `chutes build` renders them into a Dockerfile. The runtime ships inside
every image, so this module imports neither docker nor jinja2.
"""

from __future__ import annotations

import posixpath
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from chutes.exceptions import ChuteDefinitionError

NAME_PATTERN = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# An image reference: [host[:port]/]path[:tag][@sha256:digest], as the Docker reference grammar.
REF_PATTERN = re.compile(
    r"^(?:(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?)/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
APT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9]+)?(?:=[A-Za-z0-9.+~:_*-]+)?$")
PIP_PATTERN = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\[[A-Za-z0-9._,-]+\])?"
    r"(?:\s*(?:===|==|!=|~=|>=|<=|<|>)\s*[A-Za-z0-9.*+!_-]+"
    r"(?:\s*,\s*(?:===|==|!=|~=|>=|<=|<|>)\s*[A-Za-z0-9.*+!_-]+)*)?"
    r"(?:\s*@\s*\S+)?(?:\s*;\s*[^\n]+)?$"
)
ENV_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PYTHON_VERSION_PATTERN = re.compile(r"^3\.(\d{1,2})(?:\.\d{1,2})?$")
USER_PATTERN = re.compile(r"^(?:[a-z_][a-z0-9_-]{0,31}|[0-9]+)(?::(?:[a-z_][a-z0-9_-]{0,31}|[0-9]+))?$")
LABEL_KEY_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
RESERVED_LABEL_PREFIX = "ai.chutes."
CHMOD_PATTERN = re.compile(r"^[0-7]{3,4}$")


@dataclass(frozen=True)
class RunCommand:
    """`RUN`: a shell command (str) or an exec-form argument list (tuple)."""

    command: str | tuple[str, ...]


@dataclass(frozen=True)
class AptInstall:
    """`RUN apt-get install` of Debian packages."""

    packages: tuple[str, ...]


@dataclass(frozen=True)
class PipInstall:
    """`pip install` of requirement specifiers, or of a requirements file in the build context."""

    packages: tuple[str, ...] = ()
    requirements_file: str | None = None


@dataclass(frozen=True)
class Env:
    """`ENV key=value`; the value is literal (no `$VAR` expansion)."""

    key: str
    value: str


@dataclass(frozen=True)
class Workdir:
    """`WORKDIR` (an absolute path)."""

    path: str


@dataclass(frozen=True)
class User:
    """`USER` for the directives that follow and for the running chute."""

    user: str


@dataclass(frozen=True)
class Add:
    """`COPY` of a path in the build context to an absolute path in the image."""

    src: str
    dest: str
    chown: str | None = None
    chmod: str | None = None


@dataclass(frozen=True)
class Entrypoint:
    """The command the container runs instead of serving the chute with `chutes.serve`."""

    args: tuple[str, ...]


@dataclass(frozen=True)
class Label:
    """`LABEL key=value`."""

    key: str
    value: str


Directive = RunCommand | AptInstall | PipInstall | Env | Workdir | User | Add | Entrypoint | Label


class Image:
    """How to build a chute's image; every method validates its input and returns the image.

    Example:

        image = (
            Image("myuser", "my-chute", "1.0")
            .from_base("localhost/chutes-base:bookworm")
            .apt_install(["libgomp1"])
            .pip_install(["numpy>=1.26"])
            .with_env("HF_HOME", "/cache/hf")
            .add("weights/tiny.bin", "/app/weights/tiny.bin")
        )
        chute = Chute(username="myuser", name="my-chute", image=image)
    """

    def __init__(self, username: str, name: str, tag: str, readme: str = "") -> None:
        # image references are lowercase; the SDK takes "MyUser" and so do we
        self.username = check_name("username", username.lower() if isinstance(username, str) else username)
        self.name = check_name("name", name.lower() if isinstance(name, str) else name)
        if not isinstance(tag, str) or not TAG_PATTERN.match(tag):
            raise invalid("Image", f"tag {tag!r} is not a valid image tag; use letters, digits, '_', '.', '-'")
        self.tag = tag
        self.readme = check_text("Image", "readme", readme, multiline=True)
        self.base_image: str | None = None
        self.python_version: str | None = None
        self._directives: list[Directive] = []

    @property
    def uid(self) -> str:
        """A stable id of this image's name, the same for the same `username/name:tag`."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"chutes-image:{self.ref}"))

    @property
    def ref(self) -> str:
        """The reference the built image is tagged with, `username/name:tag`."""
        return f"{self.username}/{self.name}:{self.tag}"

    @property
    def directives(self) -> tuple[Directive, ...]:
        """The recorded directives, in call order."""
        return tuple(self._directives)

    @property
    def entrypoint(self) -> Entrypoint | None:
        """The last `with_entrypoint` call, or None to serve the chute."""
        found = [d for d in self._directives if isinstance(d, Entrypoint)]
        return found[-1] if found else None

    def from_base(self, ref: str) -> Image:
        """Starts the image FROM `ref` instead of the default chutes base image; a later call replaces it."""
        self.base_image = check_ref("from_base", ref)
        return self

    def with_python(self, version: str = "3.11") -> Image:
        """Builds for this Python ("3.12" or "3.12.4"): the wheels are fetched for it and the base must have it.

        Unless `from_base` names another base, the image starts from the official `python:X.Y-slim` image.
        """
        if not isinstance(version, str) or not PYTHON_VERSION_PATTERN.match(version):
            raise invalid("with_python", f"{version!r} is not a Python 3 version like '3.12' or '3.12.4'")
        self.python_version = ".".join(version.split(".")[:2])
        return self

    def with_maintainer(self, maintainer: str) -> Image:
        """Names the image's maintainer (the `maintainer` label, which replaced Docker's MAINTAINER)."""
        return self._record(Label("maintainer", check_text("with_maintainer", "maintainer", maintainer)))

    def apt_remove(self, pkgs: str | Iterable[str]) -> Image:
        """Removes Debian packages (and what only they needed), e.g. `apt_remove(["build-essential"])`."""
        names = split_words(pkgs) if isinstance(pkgs, str) else check_strings("apt_remove", "package", pkgs)
        if not names:
            raise invalid("apt_remove", "no packages given")
        for name in names:
            if not APT_PATTERN.match(name):
                raise invalid("apt_remove", f"{name!r} is not a Debian package name (like 'build-essential')")
        packages = " ".join(names)
        return self._record(RunCommand(f"apt-get remove -y --purge {packages} && apt-get autoremove -y"))

    def run_command(self, cmd: str | Iterable[str]) -> Image:
        """Runs a shell command (a str, may span lines) or an exec-form argument list."""
        if isinstance(cmd, str):
            if not cmd.strip():
                raise invalid("run_command", "the command is empty")
            check_text("run_command", "command", cmd, multiline=True)
            return self._record(RunCommand(cmd.strip("\n")))
        args = check_strings("run_command", "argument", cmd)
        return self._record(RunCommand(args))

    def apt_install(self, pkgs: str | Iterable[str]) -> Image:
        """Installs Debian packages, e.g. `apt_install(["git", "libgl1"])`."""
        names = split_words(pkgs) if isinstance(pkgs, str) else check_strings("apt_install", "package", pkgs)
        for name in names:
            if not APT_PATTERN.match(name):
                raise invalid("apt_install", f"{name!r} is not a Debian package name (like 'libgl1' or 'git=1:2.39*')")
        if not names:
            raise invalid("apt_install", "no packages given")
        return self._record(AptInstall(names))

    def pip_install(self, pkgs: str | Iterable[str]) -> Image:
        """Installs requirement specifiers, or a requirements file (`pip_install("requirements.txt")`)."""
        if isinstance(pkgs, str) and pkgs.strip().endswith(".txt") and len(pkgs.split()) == 1:
            return self._record(PipInstall(requirements_file=check_context_path("pip_install", pkgs.strip())))
        specs = split_words(pkgs) if isinstance(pkgs, str) else check_strings("pip_install", "requirement", pkgs)
        if not specs:
            raise invalid("pip_install", "no requirements given")
        for spec in specs:
            if spec.startswith("-") or not PIP_PATTERN.match(spec):
                raise invalid(
                    "pip_install",
                    f"{spec!r} is not a requirement specifier (like 'numpy>=1.26' or 'torch==2.3.1'); "
                    "pass a requirements file as pip_install('requirements.txt')",
                )
        return self._record(PipInstall(packages=specs))

    def with_env(self, key: str, value: str) -> Image:
        """Sets an environment variable in the image; the value is taken literally."""
        if not isinstance(key, str) or not ENV_KEY_PATTERN.match(key):
            raise invalid("with_env", f"{key!r} is not an environment variable name (letters, digits, '_')")
        return self._record(Env(key, check_text("with_env", "value", value)))

    def set_workdir(self, dir: str) -> Image:
        """Sets the working directory (an absolute path) for the directives that follow."""
        return self._record(Workdir(check_image_path("set_workdir", dir)))

    def set_user(self, user: str) -> Image:
        """Runs the directives that follow, and the chute, as `user` (a name or uid[:gid])."""
        if not isinstance(user, str) or not USER_PATTERN.match(user):
            raise invalid("set_user", f"{user!r} is not a user name or uid[:gid]")
        return self._record(User(user))

    def add(
        self,
        src: str | None = None,
        dest: str | None = None,
        *,
        source: str | None = None,
        chown: str | None = None,
        chmod: str | None = None,
    ) -> Image:
        """Copies `src` (relative to the build context) to `dest` (absolute) in the image.

        `source=` is the SDK's name for `src`; `chown="user:group"` and `chmod="644"` set the copy's
        owner and mode.
        """
        if source is not None and src is not None and source != src:
            raise invalid("add", f"give the source once: src={src!r} and source={source!r} differ")
        src = src if src is not None else source
        if src is None or dest is None:
            raise invalid("add", "give the source and the destination, e.g. add('weights', '/app/weights')")
        if chown is not None and (not isinstance(chown, str) or not USER_PATTERN.match(chown)):
            raise invalid("add", f"chown {chown!r} is not a user[:group] name or uid[:gid]")
        if chmod is not None and (not isinstance(chmod, str) or not CHMOD_PATTERN.match(chmod)):
            raise invalid("add", f"chmod {chmod!r} is not an octal mode like '644' or '0755'")
        return self._record(Add(check_context_path("add", src), check_image_path("add", dest), chown, chmod))

    def with_entrypoint(self, *args: str) -> Image:
        """Runs `args` as the container's command instead of serving the chute."""
        if not args:
            raise invalid(
                "with_entrypoint", "give the command and its arguments, e.g. with_entrypoint('python', 'x.py')"
            )
        return self._record(Entrypoint(check_strings("with_entrypoint", "argument", args)))

    def with_label(self, key: str, value: str) -> Image:
        """Adds an image label; keys under 'ai.chutes.' are set by chutes itself."""
        if not isinstance(key, str) or not LABEL_KEY_PATTERN.match(key):
            raise invalid("with_label", f"{key!r} is not a label key (like 'org.example.team')")
        if key.startswith(RESERVED_LABEL_PREFIX):
            raise invalid("with_label", f"label keys starting with {RESERVED_LABEL_PREFIX!r} are set by chutes build")
        return self._record(Label(key, check_text("with_label", "value", value)))

    def _record(self, directive: Directive) -> Image:
        self._directives.append(directive)
        return self

    def __repr__(self) -> str:
        base = f", base={self.base_image!r}" if self.base_image else ""
        steps = ", ".join(repr(d) for d in self._directives)
        return f"Image({self.ref!r}{base}, directives=[{steps}])"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Image):
            return NotImplemented
        mine = (self.ref, self.base_image, self.python_version, self._directives)
        return mine == (other.ref, other.base_image, other.python_version, other._directives)

    __hash__ = None  # type: ignore[assignment]


def invalid(method: str, problem: str) -> ChuteDefinitionError:
    """Builds the error for a bad argument to `Image.method`."""
    return ChuteDefinitionError(f"Image.{method}(): {problem}")


def check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise invalid("Image", f"{what} {value!r} must be lowercase letters, digits and '.', '_', '-' inside")
    return value


def check_ref(method: str, ref: object) -> str:
    if not isinstance(ref, str) or not REF_PATTERN.match(ref):
        raise invalid(method, f"{ref!r} is not an image reference (like 'python:3.11-slim')")
    return ref


def check_text(method: str, what: str, value: object, *, multiline: bool = False) -> str:
    if not isinstance(value, str):
        raise invalid(method, f"the {what} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise invalid(method, f"the {what} contains a NUL character")
    if not multiline and ("\n" in value or "\r" in value):
        raise invalid(method, f"the {what} {value!r} spans lines; a Dockerfile cannot hold that here")
    return value


def check_strings(method: str, what: str, values: object) -> tuple[str, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise invalid(method, f"expected a str or a list of str, not {type(values).__name__}")
    items = tuple(values)
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise invalid(method, f"every {what} must be a non-empty str, got {item!r}")
        check_text(method, what, item)
    return items


def split_words(value: str) -> tuple[str, ...]:
    return tuple(value.split())


def check_context_path(method: str, path: object) -> str:
    """Checks a path relative to the build context that cannot escape it."""
    text = check_text(method, "path", path)
    norm = posixpath.normpath(text.replace("\\", "/"))
    if not text.strip() or posixpath.isabs(norm) or norm == ".." or norm.startswith("../"):
        raise invalid(method, f"{text!r} must be a path inside the build context, relative to it (no '..')")
    if norm == "." or norm.split("/")[0] == ".chutes":
        raise invalid(method, f"{text!r} names the whole context or the reserved '.chutes' folder")
    return norm


def check_image_path(method: str, path: object) -> str:
    """Checks an absolute path inside the image."""
    text = check_text(method, "path", path)
    if not text.startswith("/"):
        raise invalid(method, f"{text!r} must be an absolute path in the image, like '/app/data'")
    return text
