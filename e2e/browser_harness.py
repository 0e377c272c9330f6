"""Browser-test harness: a real JupyterLab subprocess and helpers for driving its page.

The lab is a subprocess with its own runtime, settings, workspace and database dirs; the
browser is Playwright's sync API in this process. Screenshots of each step go to
``$JOBCTL_SCREENSHOTS`` (default ``e2e/artifacts``, not committed).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("JOBCTL_SCREENSHOTS") or REPO / "e2e" / "artifacts")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# the demo trainer as the seed scenario types it
SMOKE = "--mode smoke_test --batch-size 2 --lr 0.001 --optimizer adam"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Lab:
    """A JupyterLab subprocess; ``restart()`` kills it (-9) and starts it on the same port."""

    def __init__(self, root: Path, *, disable_labextension: bool = False) -> None:
        self.root = root
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_url = f"sqlite:///{root / 'jobctl.db'}"
        self.disable_labextension = disable_labextension
        self.log_path = root / "lab.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._prepare()
        self.start()

    def _prepare(self) -> None:
        settings = self.root / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        # no "get notified about Jupyter news?" toast over the views
        (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
        config = self.root / "config" / "labconfig"
        config.mkdir(parents=True, exist_ok=True)
        disabled = {"jupyter-jobctl": True} if self.disable_labextension else {}
        (config / "page_config.json").write_text(json.dumps({"disabledExtensions": disabled}))
        (self.root / "work").mkdir(exist_ok=True)

    def start(self) -> None:
        env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(self.root / "runtime"),
            "JUPYTER_CONFIG_DIR": str(self.root / "config"),
            "JUPYTER_DATA_DIR": str(self.root / "data"),
            "JUPYTERLAB_SETTINGS_DIR": str(self.root / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.root / "workspaces"),
        }
        for key in ("JOBCTL_URL", "JOBCTL_TOKEN"):  # kernels must find this lab by themselves
            env.pop(key, None)
        argv = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root / 'work'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.extension_manager=readonly",
            f"--JobCtl.db_url={self.db_url}",
            "--JobCtl.interrupt_after=0.5",
            "--JobCtl.stop_grace=2.0",
            "--JobCtl.kill_grace=1.0",
        ]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        wait_until(self._up, 90, "JupyterLab to answer")

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"JupyterLab exited:\n{self.log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/jobctl/api/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """kill -9 the server's whole process group (kernels too); jobs have their own."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def api(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """A jobctl API call, with the lab's token."""
        return self.api_root(method, f"jobctl/api/{path}", body)

    def api_root(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """Any of the server's routes (``api/kernels/…``), with the lab's token."""
        data = b"{}" if body is None and method == "POST" else None
        if body is not None:
            data = json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read()
                return r.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def job(self, job_id: str) -> dict[str, Any]:
        status, body = self.api("GET", f"jobs/{job_id}")
        assert status == 200, body
        return body

    def stop_everything(self) -> None:
        """Teardown: stop what is still active and wait for it to end."""
        if self.proc is None:
            return
        _, page = self.api("GET", "jobs?limit=1000")
        active = [j["id"] for j in (page or {}).get("jobs", []) if j["status"] in ACTIVE]
        for job_id in active:
            self.api("POST", f"jobs/{job_id}/stop")
        wait_until(
            lambda: all(self.job(j)["status"] in TERMINAL for j in active), 30, "jobs to end"
        )

    def url_for(self, path: str) -> str:
        return f"{self.url}/{path}?token={self.token}"


ACTIVE = {"pending", "initializing", "running", "paused", "stopping"}
TERMINAL = {"completed", "failed", "cancelled", "lost"}


def shoot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def write_notebook(lab: Lab, name: str, cells: list[str]) -> str:
    """A notebook of code cells in the lab's root; returns its path relative to the root."""
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": c,
            }
            for c in cells
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (lab.root / "work" / name).write_text(json.dumps(nb))
    return name


def open_notebook(page: Any, lab: Lab, name: str) -> None:
    """Open ``name`` alone (``reset``: no tabs restored from earlier tests), wait for its kernel."""
    page.goto(lab.url_for(f"lab/tree/{name}") + "&reset")
    wait_kernel_idle(page, name)


def wait_kernel_idle(page: Any, name: str, timeout: float = 90_000) -> None:
    """Wait until ``name`` is the current notebook and its kernel is connected and idle.

    Running cells before the kernel is connected pops a kernel picker; checking the path
    makes sure it is this notebook's kernel, not another tab's.
    """
    page.wait_for_function(
        """(name) => {
            const app = window.jupyterapp;
            const w = app && app.shell.currentWidget;
            if (!w || !w.context || w.context.path !== name) return false;
            const k = w.sessionContext && w.sessionContext.session &&
                      w.sessionContext.session.kernel;
            return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
        }""",
        arg=name,
        timeout=timeout,
    )


def lab_command(page: Any, command: str) -> None:
    """Run a JupyterLab command without awaiting it (page.evaluate would wait forever)."""
    page.evaluate(f"() => {{ void window.jupyterapp.commands.execute({json.dumps(command)}); }}")


def run_all_cells(page: Any) -> None:
    lab_command(page, "notebook:run-all-cells")


def job_view(page: Any, job_id: str | None = None) -> Any:
    selector = f'.jobctl-job[data-jobctl-job="{job_id}"]' if job_id else ".jobctl-job"
    return page.locator(selector).first


def status_of(view: Any) -> str:
    return str(view.locator("[data-jobctl-status]").first.inner_text()).strip()
