"""What a job's start request carries: its JSON arguments, and the files it uploads for the job's input_dir."""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request

from chutes_host.jobfiles import check_input_name

READ_CHUNK = 64 * 1024
log = logging.getLogger("chutes.host")


async def read_start_request(request: Request, spec: dict[str, Any], work: Path, *, limit: int) -> dict[str, Any]:
    """Reads the arguments (and uploads, into work/inputs) of a start request; raises HTTPException on bad input."""
    inputs = work / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise HTTPException(413, f"the request is larger than {limit // 2**20} MiB; send smaller inputs")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        return await read_multipart(request, spec, inputs, limit=limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"the request is larger than {limit // 2**20} MiB; send smaller inputs")
    return parse_args(bytes(body) or b"{}")


async def read_multipart(request: Request, spec: dict[str, Any], inputs: Path, *, limit: int) -> dict[str, Any]:
    from starlette.datastructures import UploadFile

    form = await request.form(max_files=256, max_fields=16)
    try:
        args: dict[str, Any] = {}
        total = 0
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if not spec.get("upload", True):
                    raise HTTPException(422, f"job {spec['name']!r} takes no uploads (upload=False); send only args")
                try:
                    name = check_input_name(value.filename or key)
                except ValueError as exc:
                    raise HTTPException(422, str(exc)) from None
                target = inputs / name
                with open(target, "wb") as out:
                    while chunk := await value.read(READ_CHUNK):
                        total += len(chunk)
                        if total > limit:
                            raise HTTPException(413, f"the uploads are larger than {limit // 2**20} MiB in all")
                        out.write(chunk)
            elif key == "args":
                args = parse_args(str(value).encode())
            else:
                raise HTTPException(422, f"unknown form field {key!r}; send the arguments as 'args' and files as files")
        return args
    finally:
        await form.close()


def parse_args(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise HTTPException(400, f"the job's arguments are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise HTTPException(422, f"the job's arguments must be a JSON object, not {type(value).__name__}")
    return value


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
        raise HTTPException(422, f"job {spec['name']!r}: {'; '.join(problems)} (it takes: {takes})")


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
        raise HTTPException(422, [{**e, "loc": ["body", *e["loc"]]} for e in errors])


@lru_cache(maxsize=64)
def validator_of(schema: str):  # noqa: ANN201
    from chutes.schema import schema_validator

    return schema_validator(json.loads(schema))
