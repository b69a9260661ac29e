"""Where `chutes invoke` sends a request: --url, a deployed chute (--chute), or the local default."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from chutes_cli.errors import CLIError

DEFAULT_URL = "http://127.0.0.1:8000"
CHUTE_PART = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def resolve_target(url: str | None, chute: str | None, *, host: str | None = None) -> tuple[str, dict[str, str]]:
    """Returns the base URL and the extra headers (Host, Authorization) for a request."""
    if url and chute:
        raise CLIError("give either --url or --chute, not both.", exit_code=2)
    if host and not chute:
        raise CLIError(
            "--host goes with --chute USER/NAME (a deployed chute); call a local server with --url.", exit_code=2
        )
    if chute:
        return chute_target(chute, host=host)
    base = (url or DEFAULT_URL).rstrip("/")
    if not re.match(r"^https?://[^/\s]+", base):
        raise CLIError(f"--url must be an http:// or https:// URL, e.g. {DEFAULT_URL}; got {url!r}.", exit_code=2)
    return base, {}


def chute_target(chute: str, *, host: str | None = None) -> tuple[str, dict[str, str]]:
    """Resolves USER/NAME to the host (--host, else the configured one), routed by `Host: {user}-{name}.{domain}`."""
    from chutes_cli.config import load_config

    user, sep, name = chute.partition("/")
    if not sep or not CHUTE_PART.fullmatch(user) or not CHUTE_PART.fullmatch(name):
        raise CLIError(
            f"--chute takes USER/NAME in lowercase letters, digits, '-' and '_' (e.g. myuser/my-chute); got {chute!r}.",
            exit_code=2,
        )
    config = load_config()
    api_url = (host or config.api_url or "").rstrip("/")
    if not api_url:
        raise CLIError(
            "--chute needs the host's URL, but none is configured. Pass --host http://HOST:8080, set it with "
            "`chutes config set api_url http://HOST:8080` (or CHUTES_API_URL), or call a local server with --url."
        )
    if host and not re.match(r"^https?://[^/\s]+$", api_url):
        raise CLIError(
            f"--host must be the host's http:// or https:// URL, e.g. http://HOST:8080; got {host!r}.", exit_code=2
        )
    parts = urlsplit(api_url)
    domain = gateway_domain(parts.hostname or "localhost")
    host = f"{user}-{name}.{domain}" + (f":{parts.port}" if parts.port else "")
    headers = {"Host": host}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    return f"{parts.scheme}://{parts.netloc}", headers


def gateway_domain(hostname: str) -> str:
    """Returns the domain under which the host serves chutes: the API's host name, or localhost for an IP."""
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return hostname
    return "localhost"
