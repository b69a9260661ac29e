"""Fixtures for the dashboard's tests: Debian's chromium driven headless by Playwright, and what it logged."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SCREENSHOTS_ENV = "CHUTES_SCREENSHOTS"  # a folder to copy the screenshots to, e.g. docs/images


def find_chromium() -> str | None:
    return os.environ.get("CHUTES_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


TEST_DOMAIN = "chutes.test"  # a name that is not loopback, as a real host's; the browser sends it to 127.0.0.1
RESOLVE_TEST_DOMAIN = f"--host-resolver-rules=MAP {TEST_DOMAIN} 127.0.0.1, MAP *.{TEST_DOMAIN} 127.0.0.1"


def launch_chromium(*args: str) -> Iterator[object]:
    """A headless chromium (Debian's, never a downloaded one); skips without it, but fails under CI."""
    executable = find_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if executable is None or sync_playwright is None:
        reason = "no chromium or playwright: `bash .ci/browser.sh` installs chromium, the test extra playwright"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox", *args])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from launch_chromium()


@pytest.fixture(scope="module")
def domain_browser() -> Iterator[object]:
    """A chromium that resolves chutes.test and its subdomains to 127.0.0.1 (traffic stays on loopback)."""
    yield from launch_chromium(RESOLVE_TEST_DOMAIN)


class Console:
    """What pages printed to their console as errors, and the exceptions they threw."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page) -> None:
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"{page.url}: {m.text}"))
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: uncaught {exc}"))

    def unexpected(self) -> list[str]:
        # a response with an error status is logged by chromium itself; the tests cause some on purpose
        return [e for e in self.errors if "Failed to load resource" not in e]


@pytest.fixture(scope="module")
def console() -> Console:
    return Console()


# the pictures go into the docs: this machine's own paths (in log lines) read as a user's would
TIDY_PATHS = """pairs => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (const [pattern, shown] of pairs) node.textContent = node.textContent.replace(new RegExp(pattern, "g"), shown);
  }
}"""


@pytest.fixture(scope="module")
def screenshot(tmp_path_factory) -> Iterator:
    """screenshot(page, name) saves a PNG under the test's tmp dir (and to $CHUTES_SCREENSHOTS when set)."""
    folder = tmp_path_factory.mktemp("screenshots")

    def take(page, name: str, *, full_page: bool = True) -> Path:
        path = folder / f"{name}.png"
        page.evaluate(
            TIDY_PATHS, [[re.escape(sys.prefix), "~/.venv"], [r"/tmp/pytest-of-[^/]+/[^ ]+/data", "~/.chutes/host"]]
        )
        page.screenshot(path=str(path), full_page=full_page)
        if os.environ.get(SCREENSHOTS_ENV):
            target = Path(os.environ[SCREENSHOTS_ENV])
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / path.name)
        return path

    yield take
