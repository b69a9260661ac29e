"""A job: one decorated function that runs once, for minutes or hours, on an instance of its own."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PydanticUserError, ValidationError, create_model, field_validator

from chutes.binding import Binding, analyse_parameters
from chutes.exceptions import JobDefinitionError

# Parameters a job may declare to learn where its files are; never read from the JSON arguments.
CONTEXT_PARAMS = ("output_dir", "input_dir")
OUTPUT_DIR_ENV = "CHUTES_JOB_OUTPUT_DIR"
INPUT_DIR_ENV = "CHUTES_JOB_INPUT_DIR"
JOB_ID_ENV = "CHUTES_JOB_ID"
PORT_NAME = r"^[a-z]+[0-9]*$"
SSH_PORT = 2202  # the port the SDK's `@chute.job(ssh=True)` opens for the job's ssh server


class Port(BaseModel):
    """A port a job listens on while it runs, e.g. `Port(name="web", port=8080, proto="http")`.

    As in the Chutes platform's SDK: port 22, 2202 (its ssh port) or 8002-65535, and a name of
    lowercase letters then digits.
    """

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=PORT_NAME)
    port: int
    proto: Literal["tcp", "udp", "http"] = "http"

    def __init__(self, name: str | None = None, port: int | None = None, proto: str = "http", **data: Any) -> None:
        # positional, as the SDK's examples write it: Port("web", 8080, "http")
        if name is not None:
            data["name"] = name
        if port is not None:
            data["port"] = port
        super().__init__(proto=proto, **data)

    @field_validator("port")
    @classmethod
    def _check_port(cls, value: int) -> int:
        if value in (22, SSH_PORT) or 8002 <= value <= 65535:
            return value
        raise ValueError(f"a job's port must be 22, {SSH_PORT} or in 8002-65535 (8000-8001 are the chute's own)")


@dataclass(frozen=True, slots=True, repr=False)
class Job:
    """A job of a chute: its function, how its JSON arguments bind, its timeout, uploads and ports."""

    name: str
    fn: Callable[..., Any]
    binding: Binding
    timeout: int | None = None
    upload: bool = True
    ports: tuple[Port, ...] = ()
    is_async: bool = True
    context_params: tuple[str, ...] = ()
    filename: str = ""
    lineno: int = 0
    ssh: bool = False

    def __repr__(self) -> str:
        ports = f", ports={[p.port for p in self.ports]}" if self.ports else ""
        return f"Job(name={self.name!r}, timeout={self.timeout!r}, upload={self.upload}{ports})"

    @property
    def where(self) -> str:
        return f"job '{self.name}' ({os.path.basename(self.filename)}:{self.lineno})"

    @property
    def input_fields(self) -> list[str]:
        if self.binding.kind == "body":
            return [f"{self.binding.param} (whole body)"]
        return list(self.binding.model.model_fields) if self.binding.model else []

    def bind(self, args: bytes) -> dict[str, Any]:
        """Takes the JSON arguments, and returns the keyword arguments (raises pydantic's ValidationError)."""
        return self.binding.bind(args, b"")

    def describe(self) -> dict[str, Any]:
        """Returns what a host needs to know about this job, as JSON-able data (for the manifest)."""
        return {
            "name": self.name,
            "timeout": self.timeout,
            "upload": self.upload,
            "ports": [p.model_dump() for p in self.ports],
            **({"ssh": True} if self.ssh else {}),
            "input_fields": self.input_fields,
            "required": self.required_fields,
            **({"args_schema": schema} if (schema := self.args_schema) is not None else {}),
        }

    @property
    def args_schema(self) -> dict[str, Any] | None:
        """Returns the JSON schema of the job's arguments, which a host checks a start request against
        without importing the chute (None for a type pydantic cannot describe in JSON schema)."""
        model = self.binding.model
        if TYPE_CHECKING:  # a job's binding is never "fastapi" or "raw" (define_job refuses them): it has a model
            assert model is not None
        try:
            return model.model_json_schema()
        except PydanticUserError:  # e.g. a Callable parameter: the job's own validation still applies
            return None

    @property
    def required_fields(self) -> list[str]:
        model = self.binding.model
        if self.binding.kind != "fields" or model is None:
            return []
        return [name for name, f in model.model_fields.items() if f.is_required()]


def define_job(
    fn: Callable[..., Any],
    *,
    timeout: int | None = None,
    upload: bool = True,
    ports: list[Port | dict] | tuple = (),
    ssh: bool = False,
) -> Job:
    """Takes a function and the decorator's arguments, and returns its Job (or raises JobDefinitionError)."""
    if not callable(fn):
        raise JobDefinitionError(f"@chute.job decorates a function, not {type(fn).__name__}")
    code = getattr(fn, "__code__", None)
    filename = code.co_filename if code else "<unknown>"
    lineno = code.co_firstlineno if code else 0
    name = getattr(fn, "__name__", repr(fn))
    where = f"job '{name}' ({os.path.basename(filename)}:{lineno})"

    def fail(message: str) -> JobDefinitionError:
        return JobDefinitionError(f"{where}: {message}")

    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1):
        raise fail(f"timeout must be a whole number of seconds of at least 1 (or None for no limit), not {timeout!r}")
    if not isinstance(upload, bool):
        raise fail(f"upload must be True or False, not {upload!r}")
    if not isinstance(ssh, bool):
        raise fail(f"ssh must be True or False, not {ssh!r}")
    checked = check_ports(ports, fail)
    if ssh and all(p.port != SSH_PORT for p in checked):
        checked = (*checked, Port("ssh", SSH_PORT, "tcp"))
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise fail("a job runs once and returns; it must not yield (write files to output_dir instead)")
    try:
        signature = inspect.signature(fn, eval_str=True)
    except NameError as exc:
        raise fail(f"an annotation cannot be resolved: {exc}; import the name in the module") from exc
    parameters = list(signature.parameters.values())
    if not parameters or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise fail("the function must take 'self' (the chute) as its first parameter")
    context = tuple(p.name for p in parameters[1:] if p.name in CONTEXT_PARAMS)
    direct = [p for p in parameters[1:] if p.name not in CONTEXT_PARAMS]
    model_name = "".join(part.capitalize() for part in name.split("_") if part) + "JobInput"
    if any(p.kind == p.VAR_KEYWORD for p in direct):
        # the SDK's own convention, `async def run(self, **job_data)`: every argument is a keyword,
        # and output_dir (and input_dir) arrive among them
        binding = open_binding(direct, model_name, fail)
        context = CONTEXT_PARAMS
    else:
        binding = analyse_parameters(direct, method="POST", input_schema=None, model_name=model_name, fail=fail)
    if binding.kind in ("fastapi", "raw") or binding.request_param is not None:
        raise fail(
            "a job takes JSON arguments only (no Request, bytes body or FastAPI parameters); "
            "send files as uploads and read them from input_dir"
        )
    return Job(
        name, fn, binding, timeout, upload, checked, inspect.iscoroutinefunction(fn), context, filename, lineno, ssh
    )  # fmt: skip


def open_binding(parameters: list[inspect.Parameter], model_name: str, fail: Callable) -> Binding:
    """Binds a job with `**kwargs`: its named parameters as fields, and any other key as a keyword too."""
    named = [p for p in parameters if p.kind != p.VAR_KEYWORD]
    closed = analyse_parameters(named, method="POST", input_schema=None, model_name=model_name, fail=fail)
    if closed.kind != "fields":
        raise fail("with **kwargs, the other parameters must be plain JSON arguments (no model or dict taking all)")
    if TYPE_CHECKING:  # a "fields" binding has its model
        assert closed.model is not None
    fields: dict[str, Any] = {n: (f.annotation, f) for n, f in closed.model.model_fields.items()}
    model = create_model(model_name, __config__=ConfigDict(extra="allow", allow_inf_nan=False), **fields)
    return replace(closed, model=model)


def check_ports(ports: Any, fail: Callable[[str], Exception]) -> tuple[Port, ...]:
    if ports is None:
        return ()
    if not isinstance(ports, list | tuple):
        raise fail(f"ports must be a list of Port(name, port, proto), not {type(ports).__name__}")
    checked: list[Port] = []
    for port in ports:
        try:
            checked.append(port if isinstance(port, Port) else Port(**port))
        except (TypeError, ValidationError) as exc:
            raise fail(f"port {port!r} is invalid: {exc}") from None
    for kind in ("name", "port"):
        values = [getattr(p, kind) for p in checked]
        dupes = sorted({str(v) for v in values if values.count(v) > 1})
        if dupes:
            raise fail(f"ports must have distinct {kind}s; {', '.join(dupes)} appears twice")
    return tuple(checked)


def job_kwargs(job: Job, kwargs: dict[str, Any], *, output_dir: str, input_dir: str) -> dict[str, Any]:
    """Returns the bound arguments plus the directories the job's function asked for by name."""
    context = {"output_dir": output_dir, "input_dir": input_dir}
    return {**kwargs, **{name: context[name] for name in job.context_params}}
