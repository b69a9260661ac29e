"""Where the dashboard may keep its cookies: which scheme and host a session may live on, and clearing
the copies a chute's page planted for a parent domain.

A chute's page on `{slug}.DOMAIN` can set, by script, a cookie for DOMAIN and any parent of it that is
not a public suffix; the gateway's Set-Cookie filter never sees that. Over HTTPS the dashboard's
cookies are `__Host-` ones, which no other host can set. Over plain HTTP nothing stops a planted
cookie, so sessions live there only on names no chute can reach: loopback addresses, `localhost`
(browsers take it for a public suffix and refuse `Domain=localhost`), and `*.localhost` names outside
the chutes' own site; or anywhere, when the operator opts in with `--dashboard-over-http`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi.responses import Response

CLEARED_PATHS = ("/", "/dashboard")  # where a planted copy would reach the dashboard's pages and data routes


def is_loopback(host: str) -> bool:
    """Tells whether `host` (no port; IPv6 without brackets) is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def request_host(headers: list[tuple[bytes, bytes]]) -> str:
    """Returns the host name a request was sent to, from its Host header, without the port ("" if none)."""
    value = next((v for n, v in headers if n == b"host"), b"").decode("latin-1")
    try:
        return urlsplit("//" + value).hostname or ""
    except ValueError:
        return ""


def plantable(host: str, domain: str) -> bool:
    """Tells whether a page on some chute's host `{slug}.{domain}` could set cookies that a browser sends
    to `host` over plain HTTP (a name that is not loopback counts as plantable: no one can tell)."""
    host, domain = host.lower().rstrip("."), domain.lower().rstrip(".")
    if is_loopback(host) or host == "localhost":
        return False
    if not host.endswith(".localhost"):
        return True
    labels = host.split(".")
    if domain == "localhost":  # each chute is a site of its own: only names under a chute's host are reachable
        return len(labels) > 2
    if domain.endswith(".localhost"):  # the chutes share the site `{label}.localhost` of the domain
        return labels[-2] == domain.split(".")[-2]
    return False


@dataclass(frozen=True)
class CookiePolicy:
    """Whether a request's scheme and host may carry a dashboard session, for a host on `domain`."""

    domain: str
    over_http: bool = False

    def allows(self, scheme: str, host: str) -> bool:
        return scheme == "https" or self.over_http or not plantable(host, self.domain)

    def refusal(self, host: str) -> str:
        """Returns what a browser reaching the dashboard over plain HTTP at `host` is told, and how to fix it."""
        return (
            f"The dashboard needs HTTPS at {host}: over plain HTTP, a page of any chute on *.{self.domain} can set "
            "the dashboard's cookies and sign you into its author's session. The host's operator can put a TLS "
            "proxy in front of the host and name it with --forwarded-allow-ips (see the dashboard's docs); on the "
            "host's own machine, http://localhost works as it is."
        )


def parent_domains(host: str) -> list[str]:
    """Returns `host` and each of its parents with at least two labels, e.g. a.b.c -> [a.b.c, b.c]; none
    for an address (cookies for an address are host-only)."""
    host = host.lower().rstrip(".")
    if not host or is_loopback(host) or ":" in host or host.replace(".", "").isdigit():
        return []
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def clear_planted(response: Response, names: tuple[str, ...], *, host: str) -> None:
    """Expires every copy of the cookies `names` that could have been planted for `host`: for it and each of
    its parents (a browser ignores the ones for public suffixes) and host-only, on the dashboard's paths."""
    for name in names:
        for path in CLEARED_PATHS:
            for domain in parent_domains(host):
                response.delete_cookie(name, path=path, domain=domain)
            if path != "/":  # the host-only one on "/" is the dashboard's own, replaced or deleted by the caller
                response.delete_cookie(name, path=path)
