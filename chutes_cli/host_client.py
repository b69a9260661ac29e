"""A small client of the host's control API, used by `chutes deploy` and `chutes chutes ...`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

PREFIX = "/api/v1"
UPLOAD_CHUNK = 256 * 1024


class HostAPIError(Exception):
    """The host could not be reached or refused a call; the message says what to do."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HostClient:
    """Calls one host's control API with one API key."""

    def __init__(self, url: str, key: str | None, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.url + PREFIX, headers=headers, timeout=timeout, trust_env=False)

    def __enter__(self) -> HostClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def deploy(self, bundle: Path, *, public: bool | None, progress: Callable[[int], None] | None = None) -> dict:
        """Uploads a bundle, streaming it; returns the chute as the host describes it."""
        size = bundle.stat().st_size

        def chunks() -> Iterator[bytes]:
            with open(bundle, "rb") as f:
                while chunk := f.read(UPLOAD_CHUNK):
                    if progress:
                        progress(len(chunk))
                    yield chunk

        params = {} if public is None else {"public": str(public).lower()}
        headers = {"Content-Type": "application/gzip", "Content-Length": str(size)}
        return self._call("POST", "/chutes", content=chunks(), params=params, headers=headers, timeout=600)

    def limits(self) -> dict | None:
        """Returns the host's bundle limits, or None from a host too old to tell them."""
        try:
            return self._call("GET", "/limits")
        except HostAPIError as exc:
            if exc.status == 404:
                return None
            raise

    def list_chutes(self) -> list[dict]:
        return self._call("GET", "/chutes")

    def get_chute(self, ref: str) -> dict:
        return self._call("GET", f"/chutes/{ref}")

    def delete_chute(self, ref: str) -> dict:
        return self._call("DELETE", f"/chutes/{ref}")

    def scale_chute(self, ref: str, count: int) -> dict:
        return self._call("POST", f"/chutes/{ref}/scale", json={"max_instances": count})

    def set_secret(self, ref: str, name: str, value: str) -> dict:
        return self._call("PUT", f"/chutes/{ref}/secrets/{quote(name, safe='')}", json={"value": value})

    def list_secrets(self, ref: str) -> list[dict]:
        return self._call("GET", f"/chutes/{ref}/secrets")

    def delete_secret(self, ref: str, name: str) -> dict:
        return self._call("DELETE", f"/chutes/{ref}/secrets/{quote(name, safe='')}")

    def start_job(self, ref: str, name: str, args: dict, *, inputs: list[Path] = ()) -> dict:
        """Starts a job of a chute with JSON arguments (and files for its input_dir); returns the job."""
        path = f"/chutes/{quote(ref, safe='')}/jobs/{quote(name, safe='')}"
        if not inputs:
            return self._call("POST", path, json=args)
        files = [("inputs", (p.name, open(p, "rb"))) for p in inputs]
        try:
            return self._call("POST", path, data={"args": json.dumps(args)}, files=files, timeout=600)
        finally:
            for _, (_, f) in files:
                f.close()

    def list_jobs(self, chute: str | None = None) -> list[dict]:
        return self._call("GET", "/jobs", params={"chute": chute} if chute else {})

    def get_job(self, job_id: str, *, offset: int = 0) -> dict:
        """Returns a job, with the page of its outputs from `offset` (its `outputs_next` is the next page's)."""
        return self._call("GET", f"/jobs/{quote(job_id, safe='')}", params={"offset": offset} if offset else None)

    def job_outputs(self, job_id: str) -> Iterator[dict]:
        """Yields every output file of a job ({path, size}), a page at a time."""
        offset: int | None = 0
        while offset is not None:
            page = self.get_job(job_id, offset=offset)
            yield from page.get("outputs") or []
            offset = page.get("outputs_next")

    def cancel_job(self, job_id: str) -> dict:
        """Cancels a queued or running job, or deletes a finished one and its files."""
        return self._call("DELETE", f"/jobs/{quote(job_id, safe='')}")

    def stream_job_logs(self, job_id: str, *, tail: int, follow: bool) -> Iterator[bytes]:
        params = {"tail": tail, "follow": str(follow).lower()}
        return self._stream(f"/jobs/{quote(job_id, safe='')}/logs", params)

    def download_output(self, job_id: str, path: str) -> Iterator[bytes]:
        return self._stream(f"/jobs/{quote(job_id, safe='')}/outputs/{quote(path)}", {})

    def stream_logs(self, ref: str, *, tail: int, follow: bool) -> Iterator[bytes]:
        """Yields log bytes as the host sends them."""
        params = {"tail": tail, "follow": str(follow).lower()}
        return self._stream(f"/chutes/{ref}/logs", params)

    def _stream(self, path: str, params: dict) -> Iterator[bytes]:
        try:
            with self._http.stream("GET", path, params=params, timeout=None) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise self._refusal(resp)
                yield from resp.iter_raw()
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if resp.status_code >= 400:
            raise self._refusal(resp)
        return resp.json()

    def _refusal(self, resp: httpx.Response) -> HostAPIError:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text.strip() or resp.reason_phrase
        if isinstance(detail, list):
            detail = "; ".join(field_error(d) for d in detail)
        hint = ""
        if resp.status_code == 401:
            hint = " Set the key with `chutes config set api_key KEY` (or CHUTES_API_KEY)."
        return HostAPIError(f"the host answered {resp.status_code}: {detail}{hint}", status=resp.status_code)

    def _unreachable(self, exc: Exception) -> HostAPIError:
        return HostAPIError(
            f"cannot reach the host at {self.url} ({type(exc).__name__}: {exc}). Is `chutes host serve` "
            "running there? Set the URL with `chutes config set api_url URL` or --host."
        )


def field_error(error: Any) -> str:
    """Formats one field error of a 422 as 'path.to.field: message' (the body itself is not named)."""
    if not isinstance(error, dict):
        return str(error)
    where = ".".join(str(part) for part in error.get("loc", []) if part not in ("body", "query"))
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))
