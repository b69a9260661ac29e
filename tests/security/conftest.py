"""Security tests reuse the host fixtures."""

from tests.host.conftest import host_factory  # noqa: F401
