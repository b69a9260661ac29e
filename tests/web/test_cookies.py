"""A chute's page, on a subdomain of the host's domain, setting the dashboard's cookies for that domain by
script (which no Set-Cookie filter sees): in a real browser, on a name that is not loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chutes_host.web.cookies import parent_domains, plantable
from tests.conftest import free_port
from tests.host.conftest import Host
from tests.web.conftest import TEST_DOMAIN

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or, under CI, fails) saying how to install it
    expect = None


def start_host(base: Path, *args: str) -> Host:
    args = ("--domain", TEST_DOMAIN, *args)
    host = Host(data_dir=base / "data", home=base / "home", port=free_port(), extra_args=list(args))
    host.home.mkdir()
    host.start()
    host.eve = host.add_user("eve")
    host.bob = host.add_user("bob")
    return host


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    host = start_host(tmp_path)
    yield host
    host.stop()


@pytest.fixture
def http_host(tmp_path: Path) -> Iterator[Host]:
    """A host whose operator let the dashboard work over plain HTTP on its domain."""
    host = start_host(tmp_path, "--dashboard-over-http")
    yield host
    host.stop()


def session_of(host: Host, key: str) -> str:
    """Signs in at the host's loopback address (where plain HTTP is fine) and returns the session cookie."""
    with httpx.Client(base_url=host.url, timeout=30) as client:
        form = client.get("/").text
        token = re.search(r'name="token" value="([^"]+)"', form)[1]
        assert client.post("/dashboard/sign-in", data={"key": key, "token": token}).status_code == 303
        return client.cookies["chutes_session"]


def fetch(page, path: str) -> tuple[int, dict]:
    """Calls one of the dashboard's data routes from the page, as its own scripts do (with its cookies)."""
    return page.evaluate("async p => { const r = await fetch(p); return [r.status, await r.json()]; }", path)


def plant(context, host: Host, token: str) -> None:
    """What eve's chute's page does in a visitor's browser: a script sets her session for the parent domain."""
    page = context.new_page()
    page.goto(f"http://eve-demo.{TEST_DOMAIN}:{host.port}/")
    page.evaluate(f"document.cookie = 'chutes_session={token}; domain={TEST_DOMAIN}; path=/; max-age=86400'")
    page.close()


def test_over_plain_http_a_chutes_page_cannot_sign_a_visitor_into_its_session(domain_browser, host: Host) -> None:
    context = domain_browser.new_context()
    plant(context, host, session_of(host, host.eve))
    page = context.new_page()
    dashboard = f"http://{TEST_DOMAIN}:{host.port}"
    answer = page.goto(dashboard + "/")
    assert answer.status == 403
    expect(page.locator(".who")).to_have_count(0)
    text = page.inner_text("main")
    assert "needs HTTPS" in text and "--forwarded-allow-ips" in text
    status, answer = fetch(page, "/dashboard/api/chutes")
    assert status == 403 and "needs HTTPS" in answer["detail"]
    context.close()


def test_signing_in_again_clears_a_planted_session_cookie(domain_browser, http_host: Host) -> None:
    """With --dashboard-over-http, a planted cookie ends bob's session, says so, and signing in again
    clears it: it cannot lock him out."""
    host = http_host
    context = domain_browser.new_context(base_url=f"http://{TEST_DOMAIN}:{host.port}")
    page = context.new_page()
    page.goto("/")
    page.fill("#key", host.bob)
    page.click("button[type=submit]")
    expect(page.locator(".who")).to_have_text("bob")
    plant(context, host, session_of(host, host.eve))
    status, answer = fetch(page, "/dashboard/api/chutes")
    assert status == 401 and "second session cookie" in answer["detail"]
    page.goto("/")
    expect(page.locator("#sign-in-error")).to_contain_text("second dashboard session cookie")
    page.fill("#key", host.bob)
    page.click("button[type=submit]")
    expect(page.locator(".who")).to_have_text("bob")
    assert fetch(page, "/dashboard/api/chutes") == [200, []]
    assert [c["domain"] for c in context.cookies() if c["name"] == "chutes_session"] == [TEST_DOMAIN]
    context.close()


@pytest.mark.parametrize(
    ("name", "domain", "reachable"),
    [
        ("127.0.0.1", "chutes.test", False),
        ("::1", "chutes.test", False),
        ("localhost", "localhost", False),  # browsers refuse Domain=localhost
        ("localhost", "chutes.localhost", False),
        ("chutes.localhost", "chutes.localhost", True),  # but take Domain=chutes.localhost
        ("dash.chutes.localhost", "chutes.localhost", True),
        ("other.localhost", "chutes.localhost", False),
        ("dash.localhost", "localhost", False),
        ("x.alice-demo.localhost", "localhost", True),
        ("chutes.test", "chutes.test", True),
        ("10.0.0.5", "chutes.test", True),  # not loopback: plain HTTP there is readable on the way
        ("", "chutes.test", True),
    ],
)
def test_which_names_a_chutes_page_can_set_cookies_for(name: str, domain: str, reachable: bool) -> None:
    assert plantable(name, domain) is reachable


def test_planted_copies_are_cleared_for_the_host_and_each_parent() -> None:
    assert parent_domains("dash.chutes.example.com") == ["dash.chutes.example.com", "chutes.example.com", "example.com"]
    assert parent_domains("127.0.0.1") == [] and parent_domains("::1") == [] and parent_domains("localhost") == []
