"""`chutes.chute.job`: where the SDK keeps `Job` and `Port`; the spec itself lives in `chutes.job`."""

from __future__ import annotations

from chutes.job import Job, Port, define_job

__all__ = ["Job", "Port", "define_job"]
