"""Authentication and authorisation on every route and both WebSockets.

Every check but the cookie one only reads (a request refused, or a GET), so each server
setting is one real `jupyter server` subprocess shared by the module's tests, started the
first time a test asks for it.
"""

from __future__ import annotations

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

# one worker starts the module's servers (under xdist's --dist loadgroup)
pytestmark = pytest.mark.xdist_group("auth")

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
NO_TOKEN = {"Authorization": ""}

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


class AuthServers:
    """One server per setting, each with one pending job in its database."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: dict[str, tuple[RealServer, str]] = {}

    def __call__(self, setting: str) -> tuple[RealServer, str]:
        if setting not in self.started:
            home = self.root / setting
            home.mkdir()
            db_url = f"sqlite:///{home / 'jobctl.db'}"
            store = Store(db_url)
            store.upgrade()
            job, _ = store.create_job("command", "auth", {"argv": ["true"]})
            store.close()
            path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
            server = RealServer(home, db_url, options=SETTINGS[setting], env={"PYTHONPATH": path})
            self.started[setting] = server, job["id"]
        return self.started[setting]

    def close(self) -> None:
        for server, _ in self.started.values():
            server.kill()
            m = JobManager(server.db_url, policy=FAST_POLICY)  # had a refusal failed
            try:
                end_all_jobs(m)
            finally:
                m.close()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServers]:
    servers = AuthServers(tmp_path_factory.mktemp("auth"))
    try:
        yield servers
    finally:
        servers.close()


def call(server: RealServer, method: str, path: str, job_id: str, headers=None):
    body = {} if method == "POST" else None
    return server.request(method, path.replace("{job_id}", job_id), body, headers)


async def ws_open(server: RealServer, path: str, job_id: str, headers=None) -> dict:
    """The first frame of the socket (its handshake must succeed)."""
    url = server.ws_url + API + path.replace("{job_id}", job_id)
    ws = await websocket_connect(HTTPRequest(url, headers={**server.auth, **(headers or {})}))
    try:
        return json.loads(await ws.read_message())
    finally:
        ws.close()


async def ws_refused(server: RealServer, path: str, job_id: str, headers=None) -> int:
    with pytest.raises(HTTPClientError) as err:
        await ws_open(server, path, job_id, headers)
    return err.value.code


def test_permission_table_covers_every_route() -> None:
    assert {(m, p) for m, p in HTTP_ROUTES} == set(PERMISSION) - {("GET", "/health")}
    for (method, path), perm in PERMISSION.items():
        if path != "/health":
            op = openapi.document()["paths"][path][method.lower()]
            assert op["x-jobctl-permission"] == perm, (method, path)


@pytest.mark.parametrize("setting", ["strict", "default-access"])
@pytest.mark.parametrize(("method", "path"), HTTP_ROUTES)
@pytest.mark.parametrize("token", ["", "token wrong"], ids=["no-token", "wrong-token"])
def test_http_needs_credentials(auth_server, setting, method, path, token) -> None:
    server, job_id = auth_server(setting)
    code, body = call(server, method, path, job_id, {"Authorization": token})
    assert code == 403 and isinstance(body, dict) and "error" in body


@pytest.mark.parametrize("setting", ["strict", "default-access"])
@pytest.mark.parametrize("path", WS_ROUTES)
@pytest.mark.parametrize("token", ["", "token wrong"], ids=["no-token", "wrong-token"])
async def test_websockets_need_credentials(auth_server, setting, path, token) -> None:
    server, job_id = auth_server(setting)
    assert await ws_refused(server, path, job_id, {"Authorization": token}) == 403


@pytest.mark.parametrize("setting", ["default-access", "deny-sync", "deny-async"])
def test_health_answers_anyone(auth_server, setting) -> None:
    server, _ = auth_server(setting)
    for headers in (NO_TOKEN, None):
        assert server.request("GET", "/health", headers=headers) == (
            200,
            {"status": "ok", "db": "ok"},
        )


@pytest.mark.parametrize("setting", ["deny-sync", "deny-async"])
@pytest.mark.parametrize(("method", "path"), HTTP_ROUTES)
def test_denying_authorizer_forbids_http(auth_server, setting, method, path) -> None:
    server, job_id = auth_server(setting)
    code, body = call(server, method, path, job_id)
    assert code == 403 and isinstance(body, dict) and "error" in body


@pytest.mark.parametrize("setting", ["deny-sync", "deny-async"])
@pytest.mark.parametrize("path", WS_ROUTES)
async def test_denying_authorizer_forbids_websockets(auth_server, setting, path) -> None:
    server, job_id = auth_server(setting)
    assert await ws_refused(server, path, job_id) == 403


@pytest.mark.parametrize(("method", "path"), HTTP_ROUTES)
def test_read_only_user_only_reads(auth_server, method, path) -> None:
    server, job_id = auth_server("read-only")
    code, _ = call(server, method, path, job_id)
    assert code == (200 if PERMISSION[(method, path)] == "read" else 403), (method, path)


async def test_read_only_user_reads_the_stream(auth_server) -> None:
    server, job_id = auth_server("read-only")
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
