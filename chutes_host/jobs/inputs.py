"""What a job's start request carries: its JSON arguments, and the files it uploads for the job's input_dir."""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import anyio.to_thread
import python_multipart
from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from chutes_host.errors import JobError
from chutes_host.jobs.files import check_input_name

READ_CHUNK = 64 * 1024
MAX_FILES = 256
MAX_FIELDS = 16
MAX_FIELD_BYTES = 1024 * 1024  # the `args` field
MAX_JSON_BYTES = MAX_FIELD_BYTES  # a start request of JSON arguments only: files go as multipart parts
CALLBACKS = ("on_part_begin", "on_part_data", "on_part_end", "on_header_field", "on_header_value", "on_header_end")
CALLBACKS += ("on_headers_finished",)
log = logging.getLogger("chutes.host")


async def read_start_request(request: Request, spec: dict[str, Any], work: Path, *, limit: int) -> dict[str, Any]:
    """Reads the arguments (and uploads, into work/inputs) of a start request; raises JobError on bad input."""
    inputs = work / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        limit = MAX_JSON_BYTES
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise too_large(kind, limit)
    if kind == "multipart/form-data":
        return await read_multipart(request, spec, inputs, limit=limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(kind, limit)
    return await anyio.to_thread.run_sync(parse_args, bytes(body) or b"{}")


def too_large(kind: str, limit: int) -> JobError:
    """Returns the 413 for a start request past its limit, saying how to send more."""
    if kind == "multipart/form-data":
        return JobError(f"the request is larger than {limit // 2**20} MiB; send smaller inputs", status=413)
    return JobError(
        f"the job's JSON arguments are larger than {limit // 2**20} MiB; send large inputs as files instead "
        "(a multipart/form-data request with the arguments in the field 'args' and each file as a part, "
        "e.g. `chutes jobs start CHUTE NAME --input PATH`), which the job reads from its input_dir",
        status=413,
    )


async def read_multipart(request: Request, spec: dict[str, Any], inputs: Path, *, limit: int) -> dict[str, Any]:
    """Writes each uploaded file into `inputs` as its bytes arrive, counting them against `limit` as they
    come (never spooled elsewhere first), and returns the arguments of the form's `args` field."""
    parser = InputsParser(request.headers, request.stream(), spec=spec, inputs=inputs, limit=limit)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise JobError(f"the multipart body cannot be read: {exc.message}", status=400) from None
    finally:
        parser.close_files()
    args: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            if key != "args":
                raise JobError(
                    f"unknown form field {key!r}; send the arguments as 'args' and files as files", status=422
                )
            args = await anyio.to_thread.run_sync(parse_args, value.encode())
    return args


class InputsParser(MultiPartParser):
    """Starlette's multipart parser, writing file parts straight into a job's inputs directory: at most
    MAX_FILES files, MAX_FIELDS fields of MAX_FIELD_BYTES, and `limit` bytes of files in all."""

    def __init__(self, headers: Any, stream: Any, *, spec: dict[str, Any], inputs: Path, limit: int) -> None:
        super().__init__(headers, stream, max_files=MAX_FILES, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES)
        self.spec = spec
        self.inputs = inputs
        self.limit = limit
        self.file_bytes = 0
        self.opened: list[Any] = []

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        part = self._current_part
        if part.file is None:
            return
        self._files_to_close_on_error.pop().close()  # the spooled file starlette made: the part goes to disk here
        if not self.spec.get("upload", True):
            raise JobError(f"job {self.spec['name']!r} takes no uploads (upload=False); send only args", status=422)
        try:
            name = check_input_name(part.file.filename or part.field_name)
        except ValueError as exc:
            raise JobError(str(exc), status=422) from None
        target = open(self.inputs / name, "wb")
        self.opened.append(target)
        part.file = UploadFile(target, filename=name, headers=part.file.headers)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current_part.file is None:
            return super().on_part_data(data, start, end)
        self.file_bytes += end - start
        if self.file_bytes > self.limit:
            raise JobError(f"the uploads are larger than {self.limit // 2**20} MiB in all", status=413)
        self.opened[-1].write(data[start:end])  # in parse's worker thread

    def on_part_end(self) -> None:
        part = self._current_part
        if part.file is None:
            return super().on_part_end()
        self.items.append((part.field_name, part.file))

    async def parse(self) -> FormData:
        """Returns the form; each chunk is parsed, and its files' parts written, in a worker thread, so that
        a request of many small files never holds the event loop."""
        _, params = parse_options_header(self.headers["Content-Type"])
        if b"boundary" not in params:
            raise MultiPartException("Missing boundary in multipart.")
        self._charset = "utf-8"
        callbacks = {name: getattr(self, name) for name in CALLBACKS}
        parser = python_multipart.MultipartParser(params[b"boundary"], callbacks)
        try:
            async for chunk in self.stream:
                await anyio.to_thread.run_sync(parser.write, chunk)
            parser.finalize()
        except FormParserError as exc:
            raise MultiPartException("Invalid multipart data.") from exc
        return FormData(self.items)

    def close_files(self) -> None:
        for target in self.opened:
            target.close()


def parse_args(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise JobError(f"the job's arguments are not valid JSON: {exc}", status=400) from None
    if not isinstance(value, dict):
        raise JobError(f"the job's arguments must be a JSON object, not {type(value).__name__}", status=422)
    return value


def check_start_args(spec: dict[str, Any], args: dict[str, Any]) -> str:
    """Checks a start request's arguments by name and type, and returns them as JSON; raises JobError.
    It takes time in proportion to the arguments (up to a MiB): call it in a worker thread."""
    check_args(spec, args)
    check_arg_types(spec, args)
    return json.dumps(args)


def check_args(spec: dict[str, Any], args: dict[str, Any]) -> None:
    """Refuses arguments the job cannot take by name (unknown or missing ones); their types are checked by the job."""
    fields = spec.get("input_fields")
    required = spec.get("required")
    if fields is None or any(f.endswith("(whole body)") for f in fields):
        return
    unknown = sorted(set(args) - set(fields))
    missing = sorted(set(required or ()) - set(args))
    problems = []
    if unknown:
        problems.append(f"unknown argument(s) {', '.join(unknown)}")
    if missing:
        problems.append(f"missing argument(s) {', '.join(missing)}")
    if problems:
        takes = ", ".join(fields) or "no arguments"
        raise JobError(f"job {spec['name']!r}: {'; '.join(problems)} (it takes: {takes})", status=422)


def check_arg_types(spec: dict[str, Any], args: dict[str, Any]) -> None:
    """Refuses arguments that do not match the job's JSON schema (from its manifest) with 422 and
    pydantic-shaped field errors; a manifest without a schema (an older CLI's) leaves this to the job."""
    schema = spec.get("args_schema")
    if not isinstance(schema, dict):
        return
    from chutes.schema import schema_errors

    try:
        errors = schema_errors(validator_of(json.dumps(schema, sort_keys=True)), args)
    except Exception:  # e.g. a $ref it cannot resolve: the job's own validation still applies
        log.warning("the argument schema of job %r cannot be used; the job checks its arguments", spec.get("name"))
        return
    if errors:
        detail = [{**e, "loc": ["body", *e["loc"]]} for e in errors]
        raise JobError(f"job {spec.get('name')!r}: arguments that do not match its schema", status=422, detail=detail)


@lru_cache(maxsize=64)
def validator_of(schema: str):
    from chutes.schema import schema_validator

    return schema_validator(json.loads(schema))
