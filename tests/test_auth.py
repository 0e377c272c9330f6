"""Authentication and authorisation on every route and both WebSockets.

Every check but the cookie one only reads (a request refused, or a GET): each server
setting is one real `jupyter server` subprocess, shared by all the checks of that setting
in one test, which lists every route that answered wrongly.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from conftest import FAST_POLICY, RealServer, end_all_jobs
from jupyter_jobctl.db.store import Store
from jupyter_jobctl.manager import JobManager
from jupyter_jobctl.server import openapi
from tests.harness import API

REPO = Path(__file__).resolve().parent.parent
PERMISSION = {  # DESIGN §6: read for GET and streams, write for stop/pause/resume/delete, ...
    ("GET", path): "read" for path, ops in openapi.document()["paths"].items() if "get" in ops
} | {
    ("POST", "/jobs"): "execute",
    ("POST", "/jobs/{job_id}/start"): "execute",
    ("POST", "/jobs/{job_id}/rerun"): "execute",
    ("POST", "/jobs/{job_id}/stop"): "write",
    ("POST", "/jobs/{job_id}/pause"): "write",
    ("POST", "/jobs/{job_id}/resume"): "write",
    ("DELETE", "/jobs/{job_id}"): "write",
}
HTTP_ROUTES = sorted(
    (method.upper(), path)
    for path, ops in openapi.document()["paths"].items()
    for method in ops
    if path != "/health"
)
WS_ROUTES = sorted(openapi.document()["x-websockets"])
TOKENS = {"no token": "", "a wrong token": "token wrong"}
HEALTHY = (200, {"status": "ok", "db": "ok"})

STRICT = "--ServerApp.allow_unauthenticated_access=False"
SETTINGS = {
    # every route must carry its own auth decorator: tested as the strict setting runs...
    "strict": [STRICT],
    # ... and as jupyter_server's default, which lets through handlers without a decorator
    "default-access": ["--ServerApp.allow_unauthenticated_access=True"],
    "deny-sync": [STRICT, "--ServerApp.authorizer_class=tests.authorizers.DenyJobctl"],
    "deny-async": [STRICT, "--ServerApp.authorizer_class=tests.authorizers.AsyncDenyJobctl"],
    "read-only": [STRICT, "--ServerApp.authorizer_class=tests.authorizers.ReadOnly"],
}


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator:
    """``start(setting)``: a server of that setting with one pending job; (server, job id)."""
    started: list[RealServer] = []

    def start(setting: str) -> tuple[RealServer, str]:
        db_url = f"sqlite:///{tmp_path / 'jobctl.db'}"
        store = Store(db_url)
        store.upgrade()
        job, _ = store.create_job("command", "auth", {"argv": ["true"]})
        store.close()
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        started.append(
            RealServer(tmp_path, db_url, options=SETTINGS[setting], env={"PYTHONPATH": path})
        )
        return started[-1], job["id"]

    yield start
    for server in started:
        server.kill()
        m = JobManager(server.db_url, policy=FAST_POLICY)  # had a refusal failed
        try:
            end_all_jobs(m)
        finally:
            m.close()


def call(server: RealServer, method: str, path: str, job_id: str, headers=None):
    body = {} if method == "POST" else None
    return server.request(method, path.replace("{job_id}", job_id), body, headers)


def refused(answer: tuple[int, object]) -> bool:
    code, body = answer
    return code == 403 and isinstance(body, dict) and "error" in body


async def ws_open(server: RealServer, path: str, job_id: str, headers=None) -> int | dict:
    """The first frame of the socket, or the status that refused the handshake."""
    url = server.ws_url + API + path.replace("{job_id}", job_id)
    request = HTTPRequest(url, headers={**server.auth, **(headers or {})}, request_timeout=60)
    try:
        ws = await websocket_connect(request)
    except HTTPClientError as exc:
        return exc.code
    try:
        return json.loads(await asyncio.wait_for(ws.read_message(), 60))
    finally:
        ws.close()


def test_permission_table_covers_every_route() -> None:
    assert {(m, p) for m, p in HTTP_ROUTES} == set(PERMISSION) - {("GET", "/health")}
    for (method, path), perm in PERMISSION.items():
        if path != "/health":
            op = openapi.document()["paths"][path][method.lower()]
            assert op["x-jobctl-permission"] == perm, (method, path)


@pytest.mark.parametrize("setting", ["strict", "default-access"])
async def test_every_route_and_socket_needs_credentials(auth_server, setting) -> None:
    server, job_id = auth_server(setting)
    wrong = []
    for name, token in TOKENS.items():
        headers = {"Authorization": token}
        for method, path in HTTP_ROUTES:
            if not refused(answer := call(server, method, path, job_id, headers)):
                wrong.append((name, method, path, answer))
        for path in WS_ROUTES:
            if (answer := await ws_open(server, path, job_id, headers)) != 403:
                wrong.append((name, "WEBSOCKET", path, answer))
    assert wrong == []
    assert server.request("GET", "/health", headers={"Authorization": ""}) == HEALTHY


@pytest.mark.parametrize("setting", ["deny-sync", "deny-async"])
async def test_a_denying_authorizer_forbids_every_route_and_socket(auth_server, setting) -> None:
    server, job_id = auth_server(setting)
    wrong = [(m, p, a) for m, p in HTTP_ROUTES if not refused(a := call(server, m, p, job_id))]
    for path in WS_ROUTES:
        if (answer := await ws_open(server, path, job_id)) != 403:
            wrong.append(("WEBSOCKET", path, answer))
    assert wrong == []
    assert server.request("GET", "/health") == HEALTHY  # health stays open
    assert server.request("GET", "/health", headers={"Authorization": ""}) == HEALTHY


async def test_a_read_only_user_only_reads(auth_server) -> None:
    server, job_id = auth_server("read-only")
    wrong = []
    for method, path in HTTP_ROUTES:
        code, body = call(server, method, path, job_id)
        if code != (200 if PERMISSION[(method, path)] == "read" else 403):
            wrong.append((method, path, code, body))
    assert wrong == []
    assert (await ws_open(server, "/jobs/{job_id}/stream", job_id))["type"] == "snapshot"


@pytest.fixture
def job_id(server_manager) -> str:
    job, _ = server_manager.create("command", {"argv": ["true"]})
    return job["id"]


async def test_cookie_session_origin_and_xsrf(jp_fetch, jp_ws_fetch, jp_serverapp, job_id) -> None:
    token = jp_serverapp.identity_provider.token
    r = await jp_fetch("api", "status", headers={"Authorization": ""}, params={"token": token})
    cookies = [c.split(";")[0] for c in r.headers.get_list("Set-Cookie")]
    assert cookies, "logging in with ?token= sets a session cookie"
    cookie = "; ".join(cookies)
    base = {"Authorization": "", "Cookie": cookie}
    # the cookie alone is a valid session for reads
    r = await jp_fetch("jobctl", "api", "jobs", job_id, headers=base)
    assert r.code == 200
    # a cookie POST without the XSRF token is refused
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch(
            "jobctl", "api", "jobs", job_id, "stop", method="POST", body=b"{}", headers=base
        )
    assert err.value.code == 403
    # a cross-site page riding the cookie: API answers 404 (jupyter_server), WS handshake 403
    evil = {**base, "Origin": "http://evil.example"}
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("jobctl", "api", "jobs", job_id, headers=evil)
    assert err.value.code in (403, 404)
    for parts in (("jobs", job_id, "stream"), ("stream",)):
        with pytest.raises(HTTPClientError) as err:
            await jp_ws_fetch("jobctl", "api", *parts, headers=evil)
        assert err.value.code == 403
