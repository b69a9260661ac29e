"""The pip settings of a chute's build: the index the operator names, and nothing else of the host's pip.

A chute's requirements are installed by pip inside its sandbox, where an sdist's build code (the tenant's)
runs and can read pip's environment and every file pip can. So pip there gets a clean configuration: no
`PIP_*` variable of the host, no pip.conf (global, user or `PIP_CONFIG_FILE`), no netrc, no keyring;
only `--build-index-url`, which may carry no credentials.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from chutes_host.errors import IndexUrlError

NO_INDEX = "none"
INDEX_SCHEMES = ("http", "https", "file")
# pip reads no configuration file when PIP_CONFIG_FILE is os.devnull; requests reads no netrc then either.
CLEAN_PIP_ENV = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_NO_INPUT": "1",
    "PIP_KEYRING_PROVIDER": "disabled",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "NETRC": os.devnull,
}
CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")


def check_index_url(url: str | None) -> str | None:
    """Returns the build index URL (None: pip's default index, 'none': no index), or raises IndexUrlError."""
    if url is None or url == NO_INDEX:
        return url
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
    except ValueError as exc:
        raise IndexUrlError(f"--build-index-url {url!r} is not a URL ({exc})") from None
    if parts.scheme not in INDEX_SCHEMES or not (parts.netloc or parts.scheme == "file") or not parts.path:
        raise IndexUrlError(
            f"--build-index-url {url!r} is not an index URL: give http(s)://HOST/PATH (e.g. https://pypi.org/simple), "
            f"file:///PATH, or {NO_INDEX!r} for no index"
        )
    if "@" in parts.netloc:
        shown = parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()
        raise IndexUrlError(
            f"--build-index-url {shown!r} carries credentials; chutes' build code runs where pip does and would "
            "read them. Give an index that needs none (a mirror or proxy only this host reaches)"
        )
    return url


def build_pip_env(index_url: str | None) -> dict[str, str]:
    """Returns the pip variables of a build: a clean configuration and the operator's index (if any)."""
    env = dict(CLEAN_PIP_ENV)
    if index_url == NO_INDEX:
        env["PIP_NO_INDEX"] = "1"
    elif index_url is not None:
        env["PIP_INDEX_URL"] = index_url
    return env


def build_read_only(host_env: Mapping[str, str], index_url: str | None) -> list[str]:
    """Returns the host paths a build reads: a local index (with its parent: it links files as ../x.whl)
    and the CA certificates the host's SSL_CERT_FILE, SSL_CERT_DIR or REQUESTS_CA_BUNDLE name."""
    paths = [host_env[name] for name in CA_VARIABLES if host_env.get(name, "").startswith("/")]
    if index_url is not None and index_url.startswith("file://"):
        local = urlsplit(index_url).path.rstrip("/")
        paths.append(os.path.dirname(local) if local.endswith("/simple") else local)
    return [p for p in paths if os.path.exists(p)]
