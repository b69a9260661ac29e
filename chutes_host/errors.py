"""Every error the host raises on purpose, in one tree; each carries its message and its HTTP status.

    HostError                  something the host refuses or cannot do (message, status: 500 unless said)
    ├── AccountError           a user or key operation that cannot be done (404)
    ├── DeployError            a deploy, or an action on a chute, the host refuses (status given)
    │   └── SecretError        a secret the host refuses to store or cannot read
    ├── BundleError            an upload that is not a bundle the host unpacks (400 unless said)
    ├── JobError               a job request the host refuses (status given)
    ├── TooManySessions        the dashboard holds as many sessions as it keeps (429)
    ├── TenantFileError        a file a tenant can write that the host will not use
    │   └── TooManyEntries     a directory tree holding more entries than the host walks
    ├── GpuSpecError           a `--gpus` value that cannot be read or names GPUs the machine lacks
    ├── IndexUrlError          a `--build-index-url` the host refuses
    ├── SandboxUnavailable     no sandbox can be built on this machine
    └── NvmlUnavailable        NVML is not installed or does not answer

A request that meets one is answered `{"detail": ...}` with its status by the one handler the control
API, the jobs API and the dashboard's data routes share (`chutes_host.control.shared.add_error_handlers`); the
dashboard's HTML pages show the same message and status as a page. The CLI prints the message.

The executors' errors (`ExecutorError`, the image build's `BuildStopped`) and those of the build code the
CLI and the host share (`ManifestError`, `RenderError`) stay with their code; the CLI's client has its
own (`HostAPIError`).

This module imports only the standard library: bundle extraction, which uses it, must run on any Python
the host supports.
"""

from __future__ import annotations

from typing import Any


class HostError(Exception):
    """Something the host refuses or cannot do; `status` is the HTTP status a caller gets, `detail` the
    body's `detail` (the message, unless given: e.g. a list of field errors)."""

    status = 500

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.detail = message if detail is None else detail


class AccountError(HostError):
    """A user or key operation that cannot be done, with a message saying why."""

    status = 404


class DeployError(HostError):
    """A deploy, or an action on a chute, the host refuses; `status` is the HTTP status to answer with."""


class SecretError(DeployError):
    """A secret the host refuses to store or cannot read; `status` is the HTTP status."""


class BundleError(HostError, ValueError):
    """A bundle the host refuses; `status` is the HTTP status to answer with."""

    status = 400


class JobError(HostError):
    """A job request the host refuses; `status` is the HTTP status to answer with."""


class TooManySessions(HostError):
    """The host holds as many dashboard sessions as it keeps, none of them the signing-in user's."""

    status = 429


class TenantFileError(HostError):
    """A file a tenant can write that the host will not use: not a regular file, below a link, or too large.

    The message names the file and says what it is, e.g. "result.json is a FIFO, not a regular file".
    """


class TooManyEntries(TenantFileError):
    """A walk met more files and directories than its cap; nothing past the cap was read."""


class GpuSpecError(HostError, ValueError):
    """A `--gpus` value that cannot be read, or that names GPUs this machine does not have."""


class IndexUrlError(HostError, ValueError):
    """A `--build-index-url` the host refuses; the message says why and what to give instead."""


class SandboxUnavailable(HostError):
    """No sandbox can be built on this machine; the message says why and what to install."""


class NvmlUnavailable(HostError):
    """NVML (the NVIDIA driver's management library) is not installed or does not answer."""
