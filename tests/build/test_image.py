"""The Image DSL: chaining, validation with messages that say how to fix, and readable records."""

from __future__ import annotations

import pytest

from chutes.chute import Chute
from chutes.exceptions import ChuteDefinitionError
from chutes.image import Add, AptInstall, Entrypoint, Env, Image, Label, PipInstall, RunCommand, User, Workdir


def make() -> Image:
    return Image("myuser", "demo", "1.0")


def test_every_method_chains_and_records_a_directive_in_order() -> None:
    image = (
        make()
        .from_base("python:3.11-slim")
        .run_command("echo hi")
        .apt_install(["git", "libgl1"])
        .pip_install("numpy>=1.26 rich")
        .with_env("HF_HOME", "/cache/hf")
        .set_workdir("/srv")
        .set_user("chutes")
        .add("weights/tiny.bin", "/srv/tiny.bin")
        .with_entrypoint("python", "serve.py")
        .with_label("org.example.team", "ml")
    )
    assert image.base_image == "python:3.11-slim"
    assert image.directives == (
        RunCommand("echo hi"),
        AptInstall(("git", "libgl1")),
        PipInstall(packages=("numpy>=1.26", "rich")),
        Env("HF_HOME", "/cache/hf"),
        Workdir("/srv"),
        User("chutes"),
        Add("weights/tiny.bin", "/srv/tiny.bin"),
        Entrypoint(("python", "serve.py")),
        Label("org.example.team", "ml"),
    )
    assert image.entrypoint == Entrypoint(("python", "serve.py"))
    assert image.ref == "myuser/demo:1.0"


def test_directives_are_an_immutable_snapshot() -> None:
    image = make().run_command("true")
    snapshot = image.directives
    image.run_command("false")
    assert len(snapshot) == 1 and len(image.directives) == 2


def test_repr_names_the_ref_base_and_steps() -> None:
    image = make().from_base("python:3.11-slim").with_env("A", "b c")
    assert repr(image) == "Image('myuser/demo:1.0', base='python:3.11-slim', directives=[Env(key='A', value='b c')])"


def test_pip_install_takes_a_requirements_file() -> None:
    image = make().pip_install("requirements.txt")
    assert image.directives == (PipInstall(requirements_file="requirements.txt"),)


def test_run_command_keeps_multi_line_scripts_and_exec_lists() -> None:
    image = make().run_command("set -e\necho one\n").run_command(["python", "-c", "print(1)"])
    assert image.directives == (RunCommand("set -e\necho one"), RunCommand(("python", "-c", "print(1)")))


def test_a_chute_accepts_an_image() -> None:
    image = make()
    chute = Chute(username="myuser", name="demo", image=image)
    assert chute.image is image
    assert chute.manifest()["image"] == "myuser/demo:1.0"


@pytest.mark.parametrize(
    ("program", "message"),
    [
        (lambda: Image("My User", "demo", "1"), "username 'my user' must be lowercase"),
        (lambda: Image("me", "demo", "bad tag"), "tag 'bad tag' is not a valid image tag"),
        (lambda: make().from_base("Not A Ref"), "'Not A Ref' is not an image reference"),
        (lambda: make().run_command("   "), "the command is empty"),
        (lambda: make().run_command(["ok", ""]), "every argument must be a non-empty str"),
        (lambda: make().apt_install(["git; rm -rf /"]), "is not a Debian package name"),
        (lambda: make().apt_install([]), "no packages given"),
        (lambda: make().pip_install(["--index-url=http://x"]), "is not a requirement specifier"),
        (lambda: make().pip_install("numpy$(id)"), "is not a requirement specifier"),
        (lambda: make().pip_install("../outside.txt"), "must be a path inside the build context"),
        (lambda: make().with_env("1BAD", "x"), "is not an environment variable name"),
        (lambda: make().with_env("OK", "two\nlines"), "spans lines"),
        (lambda: make().with_env("OK", 3), "must be a str, not int"),
        (lambda: make().set_workdir("relative/dir"), "must be an absolute path"),
        (lambda: make().set_user("root; id"), "is not a user name or uid[:gid]"),
        (lambda: make().add("/etc/passwd", "/x"), "must be a path inside the build context"),
        (lambda: make().add("a/../../b", "/x"), "must be a path inside the build context"),
        (lambda: make().add(".chutes/x", "/x"), "reserved '.chutes' folder"),
        (lambda: make().add("data", "data"), "must be an absolute path"),
        (lambda: make().with_entrypoint(), "give the command and its arguments"),
        (lambda: make().with_label("ai.chutes.slug", "x"), "are set by chutes build"),
        (lambda: make().with_label("bad key!", "x"), "is not a label key"),
    ],
)
def test_bad_input_is_refused_with_the_method_and_the_fix(program, message: str) -> None:
    with pytest.raises(ChuteDefinitionError) as info:
        program()
    assert message in str(info.value)
    assert str(info.value).startswith("Image.")


def test_valid_references_and_specifiers_are_accepted() -> None:
    for ref in (
        "python:3.11-slim",
        "localhost/chutes-base:bookworm",
        "127.0.0.1:5000/me/x:1",
        "nvidia/cuda:12.4.1-runtime-ubuntu22.04",
    ):
        Image("me", "x", "1").from_base(ref)
    make().pip_install(["torch==2.3.1", "uvicorn[standard]>=0.29,<1", "pkg ; python_version >= '3.11'"])
    make().apt_install("git=1:2.39* libgl1-mesa-glx python3.11")
    make().set_user("1000:1000")
