"""The dashboard's pages: sign-in (the bare domain's index), the chutes list, one chute, the host."""

from __future__ import annotations

import hmac
from pathlib import Path

import jinja2
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from chutes_host.deploy.deployments import find_own_deployment
from chutes_host.errors import HostError, TooManySessions
from chutes_host.state import HostState
from chutes_host.web.cookies import CookiePolicy, clear_planted, request_host
from chutes_host.web.forms import SignInTokens
from chutes_host.web.index import describe_host, wants_json
from chutes_host.web.sessions import (
    COOKIE,
    SIGN_IN_COOKIE,
    SessionStore,
    WebSession,
    cookie_name,
    delete_cookie,
    doubled_session,
    foreign_origin,
    read_cookie,
    session_token,
    set_session_cookie,
    set_sign_in_cookie,
)

STATIC_PATH = "/dashboard/static"
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
SECURITY_HEADERS = {
    # every asset comes from the host itself; no inline scripts, so an injected one cannot run
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# the sign-in and sign-out forms hold a key, a token and a path: no files, a few short fields
FORM_LIMITS = {"max_files": 0, "max_fields": 8, "max_part_size": 4096}


def render(name: str, *, status: int = 200, **context: object) -> HTMLResponse:
    from chutes import __version__

    page = TEMPLATES.get_template(name).render(static=STATIC_PATH, version=__version__, **context)
    return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)


def local_path(path: str) -> str:
    """Returns a path on this host to go to after signing in ('/' for anything else: no open redirects)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path or any(c in path for c in "\r\n"):
        return "/"
    return path


async def read_small_form(request: Request) -> dict[str, str]:
    """Returns the fields of a sign-in or sign-out form; 400 for files, more than 8 fields or one over 4 KiB."""
    try:
        form = await request.form(**FORM_LIMITS)
    except HTTPException as exc:
        detail = f"this is not a form the dashboard sends ({exc.detail}); reload the page and submit its form"
        raise HTTPException(400, detail) from None
    try:
        return {name: value for name, value in form.items() if isinstance(value, str)}
    finally:
        await form.close()


def create_pages_router(state: HostState, sessions: SessionStore, policy: CookiePolicy) -> APIRouter:
    """Returns the dashboard's HTML pages; without a session each shows the sign-in form."""
    router = APIRouter(include_in_schema=False)
    config = state.config
    tokens = SignInTokens()

    def sign_in_page(request: Request, *, error: str | None = None, status: int = 200, then: str = "/") -> HTMLResponse:
        host = request_host(request.scope["headers"])
        if not policy.allows(request.url.scheme, host):
            return render("error.html", status=403, session=None, page="", message=policy.refusal(host))
        if error is None and doubled_session(request):
            error = "A second dashboard session cookie came with this page (one planted for a parent domain, e.g. by "
            error += "a chute's page), so your session ended; signing in again clears it."
        token = tokens.issue()
        info = describe_host(config, str(request.base_url).rstrip("/"))
        response = render(
            "sign_in.html", status=status, info=info, token=token, error=error, session=None, then=local_path(then)
        )
        set_sign_in_cookie(response, token, scheme=request.url.scheme)
        return response

    def session_of(request: Request) -> WebSession | None:
        return sessions.find(session_token(request, policy))

    @router.get("/", response_model=None)
    def index(request: Request) -> Response:
        if wants_json(request.headers.get("accept", "")):
            return JSONResponse(describe_host(config, str(request.base_url).rstrip("/")))
        session = session_of(request)
        if session is None:
            return sign_in_page(request)
        return render("chutes.html", session=session, page="chutes", domain=config.domain)

    @router.post("/dashboard/sign-in", response_model=None)
    async def sign_in(request: Request) -> Response:
        form = await read_small_form(request)
        return await run_in_threadpool(
            check_sign_in, request, form.get("key", ""), form.get("token", ""), form.get("then", "/")
        )

    def check_sign_in(request: Request, key: str, token: str, then: str) -> Response:
        scheme = request.url.scheme
        host = request_host(request.scope["headers"])
        if not policy.allows(scheme, host):
            return render("error.html", status=403, session=None, page="", message=policy.refusal(host))
        expected = read_cookie(request.scope["headers"], cookie_name(SIGN_IN_COOKIE, scheme)) or ""
        if (
            foreign_origin(request) is not None
            or not expected
            or not hmac.compare_digest(token.encode(), expected.encode())
            or not tokens.take(token)
        ):
            return sign_in_page(
                request,
                status=403,
                error="This sign-in form had expired or came from another site; please try again.",
                then=then,
            )
        key = key.strip()
        if not key:
            return sign_in_page(request, status=400, error="Paste your API key (it starts with cpk_).", then=then)
        client = request.client.host if request.client else ""
        wait = state.failures.blocked(client)  # the same budget of failed key checks as the API and gateway
        if wait:
            return sign_in_page(
                request, status=429, error=f"Too many keys were refused; try again in {max(wait, 1):.0f} s.", then=then
            )
        try:
            session = sessions.open(key)
        except TooManySessions as exc:
            return sign_in_page(request, status=exc.status, error=exc.message, then=then)
        if session is None:
            state.failures.failed(client)
            why = "it is not shaped like a host key (cpk_...)" if not key.startswith("cpk_") else "unknown or revoked"
            return sign_in_page(
                request,
                status=401,
                error=f"That API key was not accepted: {why}. Ask the host's admin for one "
                "(`chutes host users add NAME` or `chutes host keys create NAME`).",
                then=then,
            )
        response = RedirectResponse(local_path(then), status_code=303)
        if scheme != "https":  # planted copies would hide the new cookie: the dashboard would refuse both
            clear_planted(response, (COOKIE, SIGN_IN_COOKIE), host=host)
        set_session_cookie(response, session, scheme=scheme)
        delete_cookie(response, SIGN_IN_COOKIE, scheme=scheme)
        return response

    @router.post("/dashboard/sign-out", response_model=None)
    async def sign_out(request: Request) -> Response:
        csrf = (await read_small_form(request)).get("csrf", "")
        session = await run_in_threadpool(session_of, request)
        origin = foreign_origin(request)
        valid = session is not None and hmac.compare_digest(csrf.encode(), session.csrf.encode())
        if session is not None and (origin is not None or not valid):
            why = f"it came from another site ({origin})" if origin else "the form carried no valid CSRF token"
            message = f"Sign-out refused: {why}; reload the page and try again."
            return render("error.html", status=403, session=session, page="", message=message)
        if session is not None:
            sessions.close(session.token)
        response = RedirectResponse("/", status_code=303)
        if request.url.scheme != "https":
            clear_planted(response, (COOKIE, SIGN_IN_COOKIE), host=request_host(request.scope["headers"]))
        delete_cookie(response, COOKIE, scheme=request.url.scheme)
        return response

    @router.get("/dashboard/chutes/{slug}", response_model=None)
    async def chute_page(request: Request, slug: str) -> Response:
        session = session_of(request)
        if session is None:
            return sign_in_page(request, status=401, error="Sign in to see this chute.", then=request.url.path)

        def find() -> str:
            with state.db.session() as db_session:
                return find_own_deployment(db_session, session.user, slug).slug

        try:
            own = await run_in_threadpool(find)
        except HostError as exc:  # the status and message the API answers, as a page
            return render("error.html", status=exc.status, session=session, page="", message=exc.message)
        return render("chute.html", session=session, page="chute", slug=own, url=config.chute_url(own))

    @router.get("/dashboard/host", response_model=None)
    def host_page(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return sign_in_page(request, status=401, error="Sign in to see the host.", then=request.url.path)
        return render("host.html", session=session, page="host")

    return router
