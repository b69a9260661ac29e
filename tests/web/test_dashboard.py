"""The host's dashboard in a real browser: sign-in, a chute going live, Try it, logs, scale, delete,
and what a foreign key, a wrong key and a forged request get."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import free_port
from tests.host.conftest import CHUTES, Host, cli_env, make_project, wait_for
from tests.web.conftest import Console

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or, under CI, fails) saying how to install it
    expect = None

SLUG = "alice-demo"
READY_TIMEOUT = 180_000  # ms; a shared, busy machine builds the chute's virtualenv
PHONE = {"width": 390, "height": 844}
GPUS = "2xNVIDIA A100 80GB:80"  # declared, so alice's GPU chute holds one and the host page lists both


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("dashboard")
    host = Host(data_dir=base / "data", home=base / "home", port=free_port(), extra_args=["--gpus", GPUS])
    host.home.mkdir()
    host.start()
    host.alice = host.add_user("alice")
    host.bob = host.add_user("bob")
    host.project = make_project(base / "project", "web_demo.py", "host_gpu.py")
    deployed = host.cli("deploy", "host_gpu:chute", key=host.alice, cwd=host.project)
    assert deployed.returncode == 0, deployed.stderr
    yield host
    host.stop()


def sign_in(browser, host: Host, key: str, console: Console, **options):
    context = browser.new_context(base_url=host.url, **options)
    page = context.new_page()
    console.watch(page)
    page.goto("/")
    page.fill("#key", key)
    page.click("button[type=submit]")
    expect(page.locator(".who")).to_be_visible()
    return page


@pytest.fixture(scope="module")
def alice(browser, host: Host, console: Console) -> Iterator:
    """Alice's signed-in page, once it has watched her chute deploy and turn ready without a reload."""
    page = sign_in(browser, host, host.alice, console)
    expect(page.locator('article[data-slug="alice-gpu"] .phase')).to_have_text("ready", timeout=READY_TIMEOUT)
    assert page.locator(f'article[data-slug="{SLUG}"]').count() == 0
    page.evaluate("window.stillTheSamePage = true")
    deploy = subprocess.Popen(
        [CHUTES, "deploy", "web_demo:chute"],
        cwd=host.project,
        env=cli_env(host.home, CHUTES_API_URL=host.url, CHUTES_API_KEY=host.alice),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        card = page.locator(f'article[data-slug="{SLUG}"]')
        expect(card).to_be_visible(timeout=60_000)
        page.alice_first_phase = card.locator(".phase").inner_text()
        expect(card.locator(".phase")).to_have_text("ready", timeout=READY_TIMEOUT)
        page.alice_reloaded = not page.evaluate("window.stillTheSamePage === true")
    finally:
        out, _ = deploy.communicate(timeout=READY_TIMEOUT / 1000)
    assert deploy.returncode == 0, out
    yield page
    page.context.close()


def open_chute(page) -> None:
    if not page.url.endswith(f"/dashboard/chutes/{SLUG}"):
        page.goto(f"/dashboard/chutes/{SLUG}")
    expect(page.locator("#phase")).to_have_text("ready")
    expect(page.locator("details.cord").first).to_be_visible()


def cord(page, path: str):
    details = page.locator(f'details.cord[data-path="{path}"]')
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    return details


def test_a_wrong_key_gets_a_clear_message_and_no_session(browser, host: Host, console: Console) -> None:
    context = browser.new_context(base_url=host.url)
    page = context.new_page()
    console.watch(page)
    page.goto("/")
    page.fill("#key", "cpk_deadbeef_not-a-real-key")
    with page.expect_response(re.compile(r"/dashboard/sign-in$")) as answer:
        page.click("button[type=submit]")
    assert answer.value.status == 401
    expect(page.locator("#sign-in-error")).to_contain_text("That API key was not accepted: unknown or revoked")
    assert not [c for c in context.cookies() if c["name"] == "chutes_session"]
    page.fill("#key", "hello")
    page.click("button[type=submit]")
    expect(page.locator("#sign-in-error")).to_contain_text("not shaped like a host key")
    context.close()


def test_sign_in_and_sign_out_forms_refuse_forged_posts(host: Host) -> None:
    # another site's form would carry neither the sign-in form's token nor its cookie
    forged = httpx.post(f"{host.url}/dashboard/sign-in", data={"key": host.alice, "token": "guess"})
    assert forged.status_code == 403 and "expired or came from another site" in forged.text
    assert "chutes_session" not in forged.cookies
    with httpx.Client(base_url=host.url) as client:
        form = client.get("/", headers={"Accept": "text/html"}).text
        token = re.search(r'name="token" value="([^"]+)"', form)[1]
        signed = client.post("/dashboard/sign-in", data={"key": host.alice, "token": token})
        assert signed.status_code == 303 and client.cookies.get("chutes_session")
        refused = client.post("/dashboard/sign-out", data={})
        assert refused.status_code == 403 and "CSRF" in refused.text
        assert client.get("/dashboard/api/chutes").status_code == 200  # still signed in


def test_signing_in_from_a_page_leads_back_to_it_and_nowhere_else(browser, host: Host, console: Console) -> None:
    context = browser.new_context(base_url=host.url)
    page = context.new_page()
    console.watch(page)
    page.goto("/dashboard/host")
    expect(page.locator("#sign-in-error")).to_have_text("Sign in to see the host.")
    page.fill("#key", host.bob)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{host.url}/dashboard/host")
    expect(page.locator("#host-executor")).to_have_text("process")
    context.close()
    with httpx.Client(base_url=host.url) as client:
        form = client.get("/", headers={"Accept": "text/html"}).text
        token = re.search(r'name="token" value="([^"]+)"', form)[1]
        data = {"key": host.bob, "token": token, "then": "//evil.example/"}
        assert client.post("/dashboard/sign-in", data=data).headers["location"] == "/"


def test_a_deployed_chute_becomes_ready_in_the_list_without_a_reload(alice, screenshot) -> None:
    assert alice.alice_first_phase in ("building", "starting", "ready")
    assert alice.alice_reloaded is False
    card = alice.locator(f'article[data-slug="{SLUG}"]')
    expect(card.locator(".instances")).to_have_text("1 ready of 1")
    expect(card.locator("a.url")).to_have_text(re.compile(rf"http://{SLUG}\.localhost:\d+"))
    expect(card.locator(".gpus")).to_have_text("0")
    expect(alice.locator('article[data-slug="alice-gpu"] .gpus')).to_have_text("1")
    screenshot(alice, "chutes")


def test_the_session_cookie_is_http_only_strict_and_the_key_is_nowhere_in_the_page(alice, host: Host) -> None:
    (cookie,) = [c for c in alice.context.cookies() if c["name"] == "chutes_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0
    assert host.alice not in cookie["value"]
    assert "chutes_session" not in alice.evaluate("document.cookie")
    stored = alice.evaluate("JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
    assert host.alice not in stored and host.alice not in alice.url
    assert host.alice not in alice.content()


def test_try_a_json_cord(alice, screenshot) -> None:
    open_chute(alice)
    greet = cord(alice, "/greet")
    greet.locator('input[name="name"]').fill("Ada")
    greet.locator('input[name="excited"]').check()
    greet.locator('textarea[name="tags"]').fill('["a", "b"]')
    greet.locator("button[type=submit]").click()
    expect(greet.locator(".status-line")).to_have_text(re.compile(r"^200 "))
    expect(greet.locator("pre.answer")).to_contain_text('"message": "Hello, Ada!"')
    expect(greet.locator("pre.answer")).to_contain_text('"b"')
    screenshot(alice, "chute")


def test_bad_input_to_a_cord_shows_the_chutes_own_422(alice) -> None:
    open_chute(alice)
    greet = cord(alice, "/greet")
    greet.locator('input[name="name"]').fill("Ada")
    greet.locator('textarea[name="tags"]').fill("[not json")
    greet.locator("button[type=submit]").click()
    expect(greet.locator(".alert")).to_contain_text("tags: not valid JSON")
    greet.locator('textarea[name="tags"]').fill('"not a list"')
    greet.locator("button[type=submit]").click()
    expect(greet.locator(".status-line")).to_have_text(re.compile(r"^422 "))
    expect(greet.locator("pre.answer")).to_contain_text("list")


def test_a_streaming_cord_shows_its_events_one_by_one(alice, host: Host) -> None:
    open_chute(alice)
    ticks = cord(alice, "/ticks")
    ticks.locator("button[type=submit]").click()
    events = ticks.locator("ol.events li")
    expect(events).to_have_count(1)
    expect(events.first).to_contain_text('{"tick":0}')
    # the chute holds the second event back until it is released, so the first was shown on its own
    assert ticks.locator("text=stream ended").count() == 0
    released = host.call(SLUG, "/release", method="GET", key=host.alice)
    assert released.status_code == 200, released.text
    expect(events).to_have_count(3)
    expect(ticks.locator("text=3 event(s), stream ended")).to_be_visible()


def test_a_cords_answer_can_neither_script_the_dashboard_nor_set_its_cookies(alice, host: Host) -> None:
    (before,) = [c["value"] for c in alice.context.cookies() if c["name"] == "chutes_session"]
    token = alice.locator('meta[name="csrf-token"]').get_attribute("content")
    answer = alice.request.get(f"/dashboard/try/{SLUG}/page", headers={"X-CSRF-Token": token})
    assert answer.status == 200 and "<script>" in answer.text()
    assert "set-cookie" not in answer.headers
    assert answer.headers["content-security-policy"] == "sandbox; default-src 'none'"
    # the chute itself did send the cookie: only the dashboard's hop drops it
    assert "chutes_session=planted" in host.call(SLUG, "/page", method="GET", key=host.alice).headers["set-cookie"]
    # opened in a tab (a link, another site's page), the call carries no CSRF token: no cord runs at all
    opened = alice.context.new_page()
    refused = opened.goto(f"/dashboard/try/{SLUG}/page")
    assert refused.status == 403 and "CSRF" in opened.content()
    assert opened.title() != "ran"
    opened.close()
    assert [c["value"] for c in alice.context.cookies() if c["name"] == "chutes_session"] == [before]


def test_a_cords_log_line_appears_in_the_live_tail(alice) -> None:
    open_chute(alice)
    expect(alice.locator("#logs")).to_contain_text("[instance-0]")
    word = uuid.uuid4().hex[:12]
    shout = cord(alice, "/shout")
    shout.locator('input[name="text"]').fill(word)
    shout.locator("button[type=submit]").click()
    expect(shout.locator("pre.answer")).to_contain_text(word.upper())
    expect(alice.locator("#logs")).to_contain_text(f"shout: {word}")


def test_images_and_sound_render_inline_and_files_upload(alice, tmp_path) -> None:
    open_chute(alice)
    picture = cord(alice, "/picture")
    picture.locator('input[name="size"]').fill("32")
    picture.locator("button[type=submit]").click()
    image = picture.locator("img.media")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 32
    beep = cord(alice, "/beep")
    beep.locator("button[type=submit]").click()
    expect(beep.locator("audio.media")).to_be_attached()
    assert beep.locator("audio.media").evaluate("a => a.src.startsWith('blob:')")
    upload = cord(alice, "/upload")
    sample = tmp_path / "notes.txt"
    sample.write_bytes(b"x" * 1234)
    upload.locator('input[type="file"]').set_input_files(str(sample))
    upload.locator("button[type=submit]").click()
    expect(upload.locator("pre.answer")).to_contain_text('"filename": "notes.txt"')
    expect(upload.locator("pre.answer")).to_contain_text('"size": 1234')


def test_requests_and_errors_show_up_in_the_per_minute_counts(alice, host: Host) -> None:
    before = alice.request.get(f"/dashboard/api/chutes/{SLUG}").json()["stats"]
    assert sum(before["requests"]) >= 5  # the Try it calls above, all through the gateway
    assert before["requests_per_minute"] > 0 and len(before["minutes"]) == 60
    assert sum(before["errors"]) == 0 and before["error_rate"] == 0
    open_chute(alice)
    fail = cord(alice, "/fail")
    fail.locator("button[type=submit]").click()
    expect(fail.locator(".status-line")).to_have_text(re.compile(r"^500 "))
    after = alice.request.get(f"/dashboard/api/chutes/{SLUG}").json()["stats"]
    assert sum(after["errors"]) == 1 and after["error_rate"] > 0
    assert sum(after["requests"]) == sum(before["requests"]) + 1
    expect(alice.locator("#errors")).not_to_have_text("0 %")


def test_a_post_without_the_csrf_token_is_refused(alice, host: Host) -> None:
    open_chute(alice)
    forged = alice.request.post(f"/dashboard/api/chutes/{SLUG}/scale", data={"max_instances": 3})
    assert forged.status == 403 and "CSRF token" in forged.json()["detail"]
    assert alice.request.delete(f"/dashboard/api/chutes/{SLUG}").status == 403
    called = alice.request.post(f"/dashboard/try/{SLUG}/shout", data={"text": "x"})
    assert called.status == 403
    token = alice.locator('meta[name="csrf-token"]').get_attribute("content")
    elsewhere = alice.request.post(
        f"/dashboard/api/chutes/{SLUG}/scale",
        data={"max_instances": 3},
        headers={"X-CSRF-Token": token, "Origin": "http://evil.example"},
    )
    assert elsewhere.status == 403 and "another site" in elsewhere.json()["detail"]
    assert host.api("GET", f"/chutes/{SLUG}", key=host.alice).json()["max_instances"] == 1
    # and with no session at all
    assert httpx.post(f"{host.url}/dashboard/api/chutes/{SLUG}/scale", json={"max_instances": 3}).status_code == 401


def test_scale_from_the_chute_page(alice, host: Host, screenshot) -> None:
    open_chute(alice)
    alice.fill("#scale-count", "2")
    alice.click("#scale button[type=submit]")
    expect(alice.locator("#scale-result")).to_have_text("Scaled to 2 instance(s).")
    expect(alice.locator("#instances")).to_have_text("2 ready of 2 (max 2)", timeout=READY_TIMEOUT)
    assert host.api("GET", f"/chutes/{SLUG}", key=host.alice).json()["max_instances"] == 2
    screenshot(alice, "chute-scaled")


def test_a_redeploy_shows_in_the_versions_with_their_status(alice, host: Host) -> None:
    open_chute(alice)
    versions = alice.locator("#versions li")
    expect(versions).to_have_count(1)
    expect(versions.first).to_contain_text("v1 ready")
    deployed = host.cli("deploy", "web_demo:chute", key=host.alice, cwd=host.project)
    assert deployed.returncode == 0, deployed.stderr
    expect(versions).to_have_count(2)
    expect(alice.locator('#versions li[data-version="2"]')).to_contain_text("v2 ready")
    expect(alice.locator('#versions li[data-version="1"]')).to_contain_text("v1 replaced")
    expect(alice.locator("#version")).to_have_text("v2")


def test_the_host_page(alice, screenshot) -> None:
    alice.goto("/dashboard/host")
    expect(alice.locator("#host-executor")).to_have_text("process")
    expect(alice.locator("#host-uptime")).to_have_text(re.compile(r"\d+ (min|h|d)"))
    rows = alice.locator("#gpu-rows tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("NVIDIA A100 80GB")
    expect(rows.nth(0).locator("td").last).to_have_text("alice-gpu#0")
    expect(rows.nth(1).locator("td").last).to_have_text("free")
    screenshot(alice, "host")


def test_pages_read_well_at_phone_width(browser, host: Host, console: Console, screenshot) -> None:
    page = sign_in(browser, host, host.alice, console, viewport=PHONE)
    card = page.locator(f'article[data-slug="{SLUG}"]')
    expect(card.locator(".phase")).to_have_text("ready")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, "chutes-phone")
    open_chute(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    cord(page, "/ticks")
    screenshot(page, "chute-phone")
    page.context.close()


def test_the_dashboard_works_from_the_keyboard(browser, host: Host, console: Console) -> None:
    context = browser.new_context(base_url=host.url)
    page = context.new_page()
    console.watch(page)
    page.goto("/")
    expect(page.locator("#key")).to_be_focused()
    page.keyboard.type(host.alice)
    page.keyboard.press("Enter")
    link = page.locator(f'article[data-slug="{SLUG}"] h2 a')
    expect(link).to_be_visible()
    for _ in range(12):
        page.keyboard.press("Tab")
        if link.evaluate("a => a === document.activeElement"):
            break
    expect(link).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"/dashboard/chutes/{SLUG}$"))
    context.close()


def test_a_foreign_key_sees_nothing_of_another_users_chutes(browser, host: Host, console: Console) -> None:
    page = sign_in(browser, host, host.bob, console)
    expect(page.locator(".empty h2")).to_have_text("No chutes yet")
    assert SLUG not in page.content() and "alice-gpu" not in page.content()
    page.goto(f"/dashboard/chutes/{SLUG}")
    # the same answer as for no chute at all, so other users' chute names do not leak
    expect(page.locator(".alert")).to_have_text(f"no chute {SLUG!r}; list yours with `chutes chutes list`")
    assert page.request.get(f"/dashboard/api/chutes/{SLUG}").status == 404
    assert page.request.get(f"/dashboard/api/chutes/{SLUG}/logs").status == 404
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert page.request.get(f"/dashboard/try/{SLUG}/openapi.json", headers={"X-CSRF-Token": token}).status == 404
    for method, path in (("POST", "/try/alice-demo/shout"), ("POST", "/api/chutes/alice-demo/scale")):
        resp = page.request.fetch(f"/dashboard{path}", method=method, headers={"X-CSRF-Token": token}, data={})
        assert resp.status in (404, 422) and resp.status != 200, (path, resp.status)
    resp = page.request.delete(f"/dashboard/api/chutes/{SLUG}", headers={"X-CSRF-Token": token})
    assert resp.status == 404
    page.goto("/dashboard/host")
    rows = page.locator("#gpu-rows tr")
    expect(rows.nth(0).locator("td").last).to_have_text("another user's chute")
    assert "alice" not in page.locator("#gpu-rows").inner_text()
    page.context.close()


def test_delete_with_confirmation(alice, host: Host) -> None:
    open_chute(alice)
    alice.click("#delete")
    expect(alice.locator("#confirm-delete")).to_be_visible()
    alice.locator("#confirm-delete button[value=cancel]").click()
    assert host.api("GET", f"/chutes/{SLUG}", key=host.alice).status_code == 200
    alice.click("#delete")
    alice.fill("#confirm-name", "wrong-name")
    alice.click("#confirm-button")
    expect(alice.locator("#scale-result")).to_contain_text(f"type {SLUG} to confirm")
    assert host.api("GET", f"/chutes/{SLUG}", key=host.alice).status_code == 200
    alice.click("#delete")
    alice.fill("#confirm-name", SLUG)
    alice.click("#confirm-button")
    expect(alice).to_have_url(f"{host.url}/")
    expect(alice.locator('article[data-slug="alice-gpu"]')).to_be_visible()
    expect(alice.locator(f'article[data-slug="{SLUG}"]')).to_have_count(0)
    wait_for(
        lambda: host.api("GET", f"/chutes/{SLUG}", key=host.alice).status_code == 404, timeout=30, what="the delete"
    )


def test_sign_out_ends_the_session(alice, host: Host) -> None:
    (cookie,) = [c for c in alice.context.cookies() if c["name"] == "chutes_session"]
    alice.goto("/")
    alice.click(".signout button")
    expect(alice.locator("#key")).to_be_visible()
    stolen = httpx.get(f"{host.url}/dashboard/api/chutes", cookies={"chutes_session": cookie["value"]})
    assert stolen.status_code == 401


def test_revoking_the_key_ends_its_sessions(browser, host: Host, console: Console) -> None:
    key = host.api("POST", "/keys", key=host.bob, params={"label": "browser"}).json()["key"]
    page = sign_in(browser, host, key, console)
    assert page.request.get("/dashboard/api/chutes").status == 200
    prefix = key.split("_")[1]
    assert host.api("DELETE", f"/keys/{prefix}", key=host.bob).status_code == 200
    assert page.request.get("/dashboard/api/chutes").status == 401
    page.goto("/")
    expect(page.locator("#key")).to_be_visible()
    page.context.close()


def test_no_page_logged_an_error(console: Console) -> None:
    assert console.unexpected() == []
