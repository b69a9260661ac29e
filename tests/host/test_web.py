"""The host for people with a browser: its index, the API's docs offline, and a private chute's docs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chutes import __version__
from tests.conftest import assert_page_works_offline, free_port
from tests.host.conftest import Host, make_project

SWAGGER_PAGE = Path(__file__).with_name("swagger_page.js")
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("web")
    host = Host(data_dir=base / "data", home=base / "home", port=free_port())
    host.home.mkdir()
    host.start()
    host.alice = host.add_user("alice")
    host.bob = host.add_user("bob")
    host.project = make_project(base / "project", "host_hello.py", "host_open.py")
    for ref, flags in (("host_hello:chute", []), ("host_open:chute", ["--public"])):
        deployed = host.cli("deploy", ref, *flags, key=host.alice, cwd=host.project)
        assert deployed.returncode == 0, deployed.stderr
    yield host
    host.stop()


def test_index_tells_a_browser_where_things_are(host: Host) -> None:
    resp = httpx.get(host.url + "/", headers=BROWSER)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    page = resp.text
    assert f'href="{host.url}/api/v1/docs"' in page
    assert f'href="{host.url}/api/v1/openapi.json"' in page
    assert __version__ in page
    assert f"chutes config set api_url {host.url}" in page and "chutes deploy" in page
    assert f"{{username}}-{{chute}}.localhost:{host.port}" in page


def test_index_answers_json_when_asked(host: Host) -> None:
    resp = httpx.get(host.url + "/", headers={"Accept": "application/json"})
    assert resp.status_code == 200
    info = resp.json()
    assert info["version"] == __version__
    assert info["api"] == f"{host.url}/api/v1"
    assert info["docs"] == f"{host.url}/api/v1/docs"
    assert httpx.get(info["openapi"]).json()["info"]["title"] == "chutes host"
    assert f"chutes config set api_url {host.url}" in info["how_to_deploy"]


@pytest.mark.parametrize(("path", "target"), [("/docs", "/api/v1/docs"), ("/openapi.json", "/api/v1/openapi.json")])
def test_bare_docs_urls_lead_to_the_control_api(host: Host, path: str, target: str) -> None:
    resp = httpx.get(host.url + path)
    assert resp.status_code == 307 and resp.headers["location"] == target
    assert httpx.get(host.url + path, follow_redirects=True).status_code == 200


def test_api_docs_work_with_no_network(host: Host) -> None:
    page = httpx.get(f"{host.url}/api/v1/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert_page_works_offline(page.text, lambda ref: httpx.get(host.url + ref))
    assert '"url": "/api/v1/openapi.json"' in page.text


def test_api_declares_its_key_schemes_on_authenticated_routes(host: Host) -> None:
    spec = httpx.get(f"{host.url}/api/v1/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["Bearer"] == {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer cpk_...`"}
    assert schemes["ApiKey"]["in"] == "header" and schemes["ApiKey"]["name"] == "X-API-Key"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path == "/api/v1/limits":  # told to anyone, so a client can check a bundle before it uploads
                assert "security" not in operation
                continue
            assert operation.get("security") == [{"Bearer": []}, {"ApiKey": []}], (method, path)
    # what Swagger sends once authorized, by either scheme
    for headers in ({"Authorization": f"Bearer {host.alice}"}, {"X-API-Key": host.alice}):
        assert httpx.get(f"{host.url}/api/v1/me", headers=headers).json() == {"name": "alice"}


def test_private_chute_docs_open_without_a_key_and_hold_no_chute_data(host: Host) -> None:
    page = host.call("alice-hello", "/docs", method="GET", headers=BROWSER)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    headers = {"Host": f"alice-hello.localhost:{host.port}"}
    assert_page_works_offline(page.text, lambda ref: httpx.get(host.url + ref, headers=headers))
    for cord in ("/hello", "/count", "/whoami", "say_hello"):
        assert cord not in page.text
    assert '"name": "X-API-Key"' in page.text and "requestInterceptor" in page.text
    assert "cpk_" not in page.text.replace("(cpk_...)", "")
    # the document itself still needs the owner's key
    assert host.call("alice-hello", "/openapi.json", method="GET").status_code == 401
    assert host.call("alice-hello", "/openapi.json", method="GET", key=host.bob).status_code == 404
    owned = host.call("alice-hello", "/openapi.json", method="GET", headers={"X-API-Key": host.alice})
    assert owned.status_code == 200 and "/hello" in owned.json()["paths"]
    # only reading the page is open: anything else at /docs goes through the owner check
    assert host.call("alice-hello", "/docs", method="POST").status_code == 401


def open_swagger_page(host: Host, host_header: str, page: str, scheme: str, key: str, call: tuple) -> dict:
    """Loads a docs page in jsdom with its own Swagger UI, authorizes with `key`, runs one "Try it out"."""
    node, modules = shutil.which("node"), os.environ.get("CHUTES_JSDOM")
    if node is None or not modules:
        reason = 'no node or jsdom (CHUTES_JSDOM): `eval "$(bash .ci/jsdom.sh)"` installs them'
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the page tests")
        pytest.skip(reason)
    path, method, body = call
    argv = [node, str(SWAGGER_PAGE), str(host.port), host_header, page, scheme, key, path, method, body]
    result = subprocess.run(argv, env={**os.environ, "NODE_PATH": modules}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_a_private_chute_docs_page_works_once_given_the_key(host: Host) -> None:
    seen = open_swagger_page(
        host,
        f"alice-hello.localhost:{host.port}",
        "/docs",
        "HostKey",
        host.alice,
        ("/hello", "post", '{"name": "Ada"}'),
    )
    assert seen["pathsBefore"] == [] and seen["schemes"] == ["HostKey"]
    assert {"/hello", "/count", "/whoami"} <= set(seen["pathsAfter"])
    assert seen["call"] == {"status": 200, "body": {"message": "Hello, Ada!"}}
    assert [r["url"].split(str(host.port), 1)[1] for r in seen["requests"]] == ["/openapi.json", "/hello"]
    assert all("X-API-Key" in r["headers"] and not r["keyInUrl"] for r in seen["requests"])


def test_a_private_chute_docs_page_shows_why_a_key_is_refused(host: Host) -> None:
    seen = open_swagger_page(
        host, f"alice-hello.localhost:{host.port}", "/docs", "HostKey", host.bob, ("/hello", "post", "{}")
    )
    assert seen["refused"].startswith("**The host refused this key (404):** no chute 'alice-hello' on this host")
    assert [r["url"].split(str(host.port), 1)[1] for r in seen["requests"]] == ["/openapi.json"]


@pytest.mark.parametrize("scheme", ["Bearer", "ApiKey"])
def test_try_it_out_on_the_api_docs_sends_the_key(host: Host, scheme: str) -> None:
    seen = open_swagger_page(
        host, f"127.0.0.1:{host.port}", "/api/v1/docs", scheme, host.bob, ("/api/v1/me", "get", "")
    )
    assert seen["schemes"] == ["Bearer", "ApiKey"] and seen["authorized"] == [scheme]
    assert seen["call"] == {"status": 200, "body": {"name": "bob"}}
    header = {"Bearer": "Authorization", "ApiKey": "X-API-Key"}[scheme]
    assert header in seen["requests"][-1]["headers"] and not seen["requests"][-1]["keyInUrl"]


def test_public_chute_serves_its_own_docs_offline(host: Host) -> None:
    page = host.call("alice-open", "/docs", method="GET")
    assert page.status_code == 200
    headers = {"Host": f"alice-open.localhost:{host.port}"}
    assert_page_works_offline(page.text, lambda ref: httpx.get(host.url + ref, headers=headers))
    assert '"url": "/openapi.json"' in page.text and "requestInterceptor" not in page.text
