"""The host's dashboard for people, served at the bare domain: sign-in, chutes, a chute's cords, the host.

Its pages and data routes are a thin layer over the services it shares with the control API
(`chutes_host.control.shared`); `/` still answers JSON to `Accept: application/json`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from chutes_host.state import HostState
from chutes_host.web.cookies import CookiePolicy
from chutes_host.web.feeds import PREFIX, TRY_PREFIX, create_feeds_router
from chutes_host.web.index import create_index_router
from chutes_host.web.pages import STATIC_PATH, create_pages_router
from chutes_host.web.sessions import SessionAdmission, SessionStore

STATIC_DIR = Path(__file__).with_name("static")


def mount_web(api: FastAPI, state: HostState) -> None:
    """Adds the bare domain's index, the dashboard's pages and data routes, and its static files to `api`."""
    sessions = SessionStore(state.keys)
    policy = CookiePolicy(state.config.domain, over_http=state.config.dashboard_over_http)
    api.state.web_sessions = sessions
    api.state.web_cookies = policy
    api.add_middleware(SessionAdmission, prefixes=(PREFIX + "/", TRY_PREFIX), sessions=sessions, policy=policy)
    api.include_router(create_index_router())
    api.include_router(create_pages_router(state, sessions, policy))
    api.include_router(create_feeds_router(state))
    api.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="dashboard-static")
