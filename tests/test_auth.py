"""Authentication and authorisation on every route and both WebSockets."""

from __future__ import annotations

import json

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPClientError

from conftest import server_config
from jupyter_jobctl.server import openapi

PERMISSION = {  # docs/api.md: read for GET and streams, write for stop/pause/resume/delete, ...
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


class DenyJobctl(Authorizer):
    def is_authorized(self, handler, user, action, resource):
        return resource != "jobctl"


class AsyncDenyJobctl(Authorizer):
    async def is_authorized(self, handler, user, action, resource):
        return resource != "jobctl"


class ReadOnly(Authorizer):
    def is_authorized(self, handler, user, action, resource):
        return resource != "jobctl" or action == "read"


def test_permission_table_covers_every_route() -> None:
    assert {(m, p) for m, p in HTTP_ROUTES} == set(PERMISSION) - {("GET", "/health")}
    for (method, path), perm in PERMISSION.items():
        if path != "/health":
            op = openapi.document()["paths"][path][method.lower()]
            assert op["x-jobctl-permission"] == perm, (method, path)


async def _call(jp_fetch, method: str, path: str, job_id: str, **kwargs):
    parts = path.strip("/").replace("{job_id}", job_id).split("/")
    if method in ("POST",):
        kwargs.setdefault("body", json.dumps({}))
    try:
        return await jp_fetch("jobctl", "api", *parts, method=method, **kwargs)
    except HTTPClientError as exc:
        return exc.response


@pytest.fixture
def job_id(server_manager) -> str:
    job, _ = server_manager.create("command", {"argv": ["true"]})
    return job["id"]


@pytest.mark.parametrize(("method", "path"), HTTP_ROUTES)
@pytest.mark.parametrize("token", ["", "token wrong"], ids=["no-token", "wrong-token"])
async def test_http_needs_credentials(jp_fetch, job_id, method, path, token) -> None:
    r = await _call(jp_fetch, method, path, job_id, headers={"Authorization": token})
    assert r.code == 403
    assert "error" in json.loads(r.body)


@pytest.mark.parametrize("path", WS_ROUTES)
@pytest.mark.parametrize("token", ["", "token wrong"], ids=["no-token", "wrong-token"])
async def test_websockets_need_credentials(jp_ws_fetch, job_id, path, token) -> None:
    parts = path.strip("/").replace("{job_id}", job_id).split("/")
    with pytest.raises(HTTPClientError) as err:
        await jp_ws_fetch("jobctl", "api", *parts, headers={"Authorization": token})
    assert err.value.code == 403


class TestServerDefaultAccessSetting:
    """jupyter_server's default ``allow_unauthenticated_access=True`` only lets through
    handlers without an auth decorator; every jobctl route still demands credentials."""

    @pytest.fixture
    def jp_server_config(self, sqlite_url):
        config = server_config(sqlite_url)
        config["ServerApp"]["allow_unauthenticated_access"] = True
        return config

    @pytest.mark.parametrize(("method", "path"), HTTP_ROUTES)
    async def test_http_needs_credentials(self, jp_fetch, job_id, method, path) -> None:
        r = await _call(jp_fetch, method, path, job_id, headers={"Authorization": ""})
        assert r.code == 403 and "error" in json.loads(r.body)

    @pytest.mark.parametrize("path", WS_ROUTES)
    async def test_websockets_need_credentials(self, jp_ws_fetch, job_id, path) -> None:
        parts = path.strip("/").replace("{job_id}", job_id).split("/")
        with pytest.raises(HTTPClientError) as err:
            await jp_ws_fetch("jobctl", "api", *parts, headers={"Authorization": ""})
        assert err.value.code == 403

    async def test_health_answers_anyone(self, jp_fetch) -> None:
        r = await jp_fetch("jobctl", "api", "health", headers={"Authorization": ""})
        assert json.loads(r.body) == {"status": "ok", "db": "ok"}


@pytest.mark.parametrize("authorizer", [DenyJobctl, AsyncDenyJobctl], ids=["sync", "async"])
class TestDenyingAuthorizer:
    @pytest.fixture
    def jp_server_config(self, sqlite_url, authorizer):
        config = server_config(sqlite_url)
        config["ServerApp"]["authorizer_class"] = authorizer
        return config

    @pytest.mark.parametrize(("method", "path"), HTTP_ROUTES)
    async def test_http_forbidden(self, jp_fetch, job_id, method, path) -> None:
        r = await _call(jp_fetch, method, path, job_id)
        assert r.code == 403 and "error" in json.loads(r.body)

    @pytest.mark.parametrize("path", WS_ROUTES)
    async def test_websocket_forbidden(self, jp_ws_fetch, job_id, path) -> None:
        parts = path.strip("/").replace("{job_id}", job_id).split("/")
        with pytest.raises(HTTPClientError) as err:
            await jp_ws_fetch("jobctl", "api", *parts)
        assert err.value.code == 403

    async def test_health_stays_open(self, jp_fetch) -> None:
        r = await jp_fetch("jobctl", "api", "health")
        assert json.loads(r.body) == {"status": "ok", "db": "ok"}


class TestReadOnlyUser:
    @pytest.fixture
    def jp_server_config(self, sqlite_url):
        config = server_config(sqlite_url)
        config["ServerApp"]["authorizer_class"] = ReadOnly
        return config

    @pytest.mark.parametrize(("method", "path"), HTTP_ROUTES)
    async def test_only_reads_pass(self, jp_fetch, job_id, method, path) -> None:
        r = await _call(jp_fetch, method, path, job_id)
        if PERMISSION[(method, path)] == "read":
            assert r.code == 200
        else:
            assert r.code == 403, (method, path)

    async def test_stream_is_readable(self, jp_ws_fetch, job_id) -> None:
        ws = await jp_ws_fetch("jobctl", "api", "jobs", job_id, "stream")
        assert json.loads(await ws.read_message())["type"] == "snapshot"
        ws.close()


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
