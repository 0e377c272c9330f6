"""Fixtures of the kernel-side and CLI tests: one real Jupyter server for the session, and
kernels started by it (driven over the server's own kernel WebSocket)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import websocket

from conftest import FAST_POLICY, RealServer, end_all_jobs, wait_for
from jupyter_jobctl.manager import JobManager

# what would send the kernel side to another server than the one under test
DISCOVERY_ENV = ("JOBCTL_URL", "JOBCTL_TOKEN", "JUPYTERHUB_API_TOKEN", "JPY_PARENT_PID")


@pytest.fixture(scope="session")
def jobctl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    """A `jupyter server` subprocess with the extension, shared by the kernel/CLI tests.

    At teardown its kernels are shut down, the server is killed, then every job still
    running is stopped and its processes reaped (jobs live in their own sessions).
    """
    saved = {name: os.environ.pop(name) for name in DISCOVERY_ENV if name in os.environ}
    root = tmp_path_factory.mktemp("jobctl-kernel-side")
    (root / "runtime").mkdir()
    db_url = f"sqlite:///{root / 'jobctl.db'}"
    server = RealServer(root, db_url)
    try:
        yield server
    finally:
        try:
            headers = {"Authorization": f"token {server.token}"}
            for kernel in httpx.get(f"{server.url}/api/kernels", headers=headers).json():
                httpx.delete(f"{server.url}/api/kernels/{kernel['id']}", headers=headers)
        except (httpx.HTTPError, ValueError):
            pass
        server.kill()
        manager = JobManager(db_url, policy=FAST_POLICY)
        try:
            end_all_jobs(manager)
        finally:
            manager.close()
        os.environ.update(saved)


@pytest.fixture
def server_env(jobctl_server: RealServer, monkeypatch: pytest.MonkeyPatch) -> RealServer:
    """This process finds the test server by itself (JOBCTL_URL/JOBCTL_TOKEN)."""
    monkeypatch.setenv("JOBCTL_URL", jobctl_server.url)
    monkeypatch.setenv("JOBCTL_TOKEN", jobctl_server.token)
    return jobctl_server


def wait_job(server: RealServer, job_id: str, *states: str, timeout: float = 60.0) -> dict:
    """The job once its state is one of ``states`` (asked over the API)."""

    def reached() -> dict | None:
        status, job = server.request("GET", f"/jobs/{job_id}")
        assert status == 200, job
        return job if job["status"] in states else None  # type: ignore[index]

    return wait_for(reached, timeout, f"job {job_id} to become {'/'.join(states)}")


TERMINAL = ("completed", "failed", "cancelled", "lost")


class ServerKernel:
    """A kernel started by the server (``POST /api/kernels``), run over its WebSocket."""

    def __init__(self, server: RealServer, path: str = "") -> None:
        self.server = server
        self.headers = {"Authorization": f"token {server.token}"}
        response = httpx.post(
            f"{server.url}/api/kernels",
            json={"name": "python3", "path": path},
            headers=self.headers,
            timeout=60,
        )
        response.raise_for_status()
        self.id = response.json()["id"]
        self.session = uuid.uuid4().hex
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/api/kernels/{self.id}/channels?session_id={self.session}",
            header=[f"Authorization: token {server.token}"],
            timeout=60,
            suppress_origin=True,
        )
        wait_for(lambda: self.execute("1")["status"] == "ok", 60, "the kernel to answer")

    def execute(self, code: str, timeout: float = 120.0) -> dict[str, Any]:
        """Run ``code``; returns ``{"status", "stdout", "stderr", "displays", "error"}``."""
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "test",
                        "session": self.session,
                        "date": datetime.now(timezone.utc).isoformat(),
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        out: dict[str, Any] = {"stdout": "", "stderr": "", "displays": [], "error": None}
        replied = idle = False
        self.ws.settimeout(timeout)
        while not (replied and idle):
            raw = self.ws.recv()
            if not isinstance(raw, str):
                continue  # a binary frame (comm buffers): nothing the tests read
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif kind in ("display_data", "execute_result"):
                out["displays"].append(content["data"])
            elif kind == "error":
                out["error"] = f"{content['ename']}: {content['evalue']}"
            elif kind == "execute_reply":
                out["status"] = content["status"]
                replied = True
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        return out

    def shutdown(self) -> None:
        try:
            self.ws.close()
        finally:
            httpx.delete(f"{self.server.url}/api/kernels/{self.id}", headers=self.headers)


@pytest.fixture
def server_kernel(jobctl_server: RealServer) -> Iterator[ServerKernel]:
    kernel = ServerKernel(jobctl_server)
    try:
        yield kernel
    finally:
        kernel.shutdown()


def runtime_dir(server: RealServer) -> Path:
    return server.root / "runtime"
