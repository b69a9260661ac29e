"""Mistakes fail when the chute is defined, naming the function, file, line and the fix."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from chutes.chute import Chute, NodeSelector
from chutes.exceptions import ChuteDefinitionError, CordDefinitionError


def new_chute(**options) -> Chute:
    return Chute(username="tests", name="definition", image="tests/definition", **options)


class Full(BaseModel):
    text: str
    temperature: float = 0.7


class Minimal(BaseModel):
    text: str


class Unrelated(BaseModel):
    prompt: str


def define(options: dict, fn_source: str) -> None:
    chute = new_chute()
    namespace: dict = {}
    exec(compile(fn_source, "my_chute.py", "exec", dont_inherit=True), namespace)
    chute.cord(**options)(namespace["fn"])


@pytest.mark.parametrize(
    ("options", "source", "message"),
    [
        ({"public_api_path": "/has space"}, "async def fn(self): pass", "must start with '/'"),
        ({"public_api_path": "/a?b"}, "async def fn(self): pass", "no spaces, '?' or '#'"),
        ({"public_api_path": "/_ready"}, "async def fn(self): pass", "built-in route"),
        ({"method": "FETCH"}, "async def fn(self): pass", "method 'FETCH' is not one of"),
        ({"stream": True}, "async def fn(self) -> dict: return 1", "needs a generator function (use 'yield'"),
        ({}, "async def fn(self):\n    yield 1", "add stream=True"),
        ({"passthrough": True, "passthrough_port": 70000}, "async def fn(self): pass", "from 1 to 65535"),
        ({"input_schema": Full, "minimal_input_schema": Unrelated}, "async def fn(self, d: Full): pass", "['prompt']"),
        (
            {"minimal_input_schema": Unrelated},
            "async def fn(self, text: str): pass",
            "requires ['prompt'], which the function's parameters lack",
        ),
        ({"input_schema": dict}, "async def fn(self, d): pass", "must be a pydantic BaseModel class"),
        ({"input_schema": Full}, "async def fn(self, a: str, b: str): pass", "one input parameter"),
        ({"input_schema": Full}, "async def fn(self, d: Unrelated): pass", "annotate it as Full"),
        ({}, "async def fn(): pass", "must take 'self'"),
        ({}, "async def fn(self, *args): pass", "is not supported"),
        ({}, "async def fn(self, _x: int): pass", "starts with '_'"),
        ({}, "async def fn(self, x: 'Missing'): pass", "cannot be resolved"),
        ({"output_content_type": "jpeg"}, "async def fn(self): pass", "is not a media type"),
    ],
)
def test_mistakes_name_the_cord_file_line_and_fix(options, source, message) -> None:
    source = "from tests.runtime.test_definition import Full, Unrelated\n" + source
    with pytest.raises(CordDefinitionError) as info:
        define(options, source)
    assert str(info.value).startswith("cord 'fn' (my_chute.py:2): ")
    assert message in str(info.value)


def test_two_cords_on_one_method_and_path_are_refused() -> None:
    chute = new_chute()

    @chute.cord(public_api_path="/same")
    async def one(self) -> dict:
        return {}

    with pytest.raises(CordDefinitionError, match=r"POST /same is already served by cord 'one' \(test_definition.py:"):

        @chute.cord(public_api_path="/same")
        async def two(self) -> dict:
            return {}

    @chute.cord(public_api_path="/same", method="GET")
    async def three(self) -> dict:
        return {}

    assert [c.name for c in chute.cords] == ["one", "three"]


def test_the_decorator_returns_the_function_unchanged() -> None:
    chute = new_chute()

    async def hello(self, name: str) -> dict:
        return {"name": name}

    async def goodbye(self) -> dict:
        return {}

    assert chute.cord(public_api_path="/hello")(hello) is hello
    assert chute.cord(goodbye) is goodbye  # the bare form serves at /{function name}
    assert [repr(c) for c in chute.cords] == [
        "Cord(path='/hello', method='POST')",
        "Cord(path='/goodbye', method='POST')",
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"username": "My User"}, "username 'My User' may hold only letters"),
        ({"name": "bad@name"}, "name 'bad@name' cannot be made a hostname label: it holds '@'"),
        ({"name": "..."}, "name '...' cannot be made a hostname label"),
        ({"concurrency": 0}, "concurrency must be a whole number of at least 1"),
        ({"image": ""}, "image must name a prebuilt image"),
        ({"image": 5}, "image must be a str or a chutes.image.Image"),
        ({"node_selector": {"gpu_count": 9}}, "node_selector is invalid"),
        ({"scaling_threshold": 1.5}, "scaling_threshold must be in (0, 1]"),
    ],
)
def test_bad_chute_arguments_are_refused(options, message) -> None:
    arguments = {"username": "tests", "name": "definition", "image": "tests/definition", **options}
    with pytest.raises(ChuteDefinitionError) as info:
        Chute(**arguments)
    assert message in str(info.value)


def test_slug_node_selector_and_manifest() -> None:
    chute = new_chute(node_selector=NodeSelector(gpu_count=2, min_vram_gb_per_gpu=48), concurrency=4)

    @chute.cord(public_api_path="/generate", stream=True)
    async def generate(self, prompt: str, max_tokens: int = 16):
        yield {"token": prompt}

    assert chute.slug == "tests-definition"
    assert repr(chute.cords[0]) == "Cord(path='/generate', method='POST', stream=True)"
    manifest = chute.manifest()
    assert manifest["node_selector"]["gpu_count"] == 2
    assert manifest["cords"] == [
        {
            "name": "generate",
            "path": "/generate",
            "method": "POST",
            "stream": True,
            "passthrough": False,
            "output_content_type": None,
            "input_fields": ["prompt", "max_tokens"],
        }
    ]
    with pytest.raises(ValueError):
        NodeSelector(min_vram_gb_per_gpu=8)
    with pytest.raises(ValueError, match="both included and excluded"):
        NodeSelector(include=["a100"], exclude=["a100"])


def test_public_names() -> None:
    import chutes.chute
    import chutes.exceptions
    import chutes.testing

    assert chutes.__version__
    assert {"Chute", "NodeSelector"} <= set(vars(chutes.chute))
    assert {"ChutesError", "ChuteDefinitionError", "CordDefinitionError", "ChuteLoadError", "StartupError"} <= set(
        vars(chutes.exceptions)
    )
    assert callable(chutes.testing.client)


def test_the_runtime_imports_no_cli_host_or_build_tools() -> None:
    import subprocess
    import sys

    code = (
        "import sys, chutes.chute, chutes.openapi, chutes.bridge, chutes.proxy;"
        "bad = [m for m in ('chutes_build', 'chutes_cli', 'chutes_host', 'docker', 'jinja2', 'rich', 'typer')"
        " if m in sys.modules];"
        "print(bad)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"
