"""Shared fixtures: real SQLite files, a real PostgreSQL server, managers with short graces."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jupyter_jobctl.core.states import TERMINAL
from jupyter_jobctl.manager import JobManager, StopPolicy
from jupyter_jobctl.procs.processes import kill_job_processes

# pytest-jupyter has no entry point; it must be declared in the root conftest
pytest_plugins = ["pytest_jupyter.jupyter_server"]

# the suite that test batches run: collected only by jobctl workers, never by this run
collect_ignore = ["tests/batch_suite"]

TESTS_DIR = Path(__file__).parent / "tests"
# the seed scenario's config for the demo trainer (DESIGN §2)
SEED = {
    "mode": "smoke_test",
    "epochs": 5,
    "batch_size": 2,
    "learning_rate": 0.001,
    "optimizer": "adam",
}
DEMO_TARGET = "jupyter_jobctl.examples.train:main"
# short ladder so every stop path finishes in about a second
FAST_POLICY = StopPolicy(
    interrupt_after=0.3, stop_grace=1.0, kill_grace=0.7, heartbeat_interval=0.3
)


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition"):
    """Poll until ``predicate()`` is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL cluster run as the `postgres` user (initdb refuses root)."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not bins:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; `make test` installs Debian postgresql.")
        pytest.skip("PostgreSQL is not installed (run `make test`)")
    bin_dir = bins[-1]
    data = tempfile.mkdtemp(prefix="jobctl-pg-")
    port = _free_port()
    as_pg: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
    subprocess.run(
        [*as_pg, f"{bin_dir}/initdb", "-D", data, "-A", "trust", "-U", "jobctl"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        [*as_pg, f"{bin_dir}/pg_ctl", "-D", data, "-w", "-l", f"{data}/log", "-o", opts, "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://jobctl@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_pg, f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One fresh database per test, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobctl.db'}"
    server = request.getfixturevalue("postgres_server")
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.replace("postgresql+psycopg", "postgresql") + "/postgres") as conn:
        conn.autocommit = True
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobctl.db'}"


@pytest.fixture
def make_manager(db_url: str) -> Iterator[Callable[..., JobManager]]:
    """Managers on the test's database; at teardown every job is ended and every process killed."""
    made: list[JobManager] = []

    def make(policy: StopPolicy = FAST_POLICY, **kwargs) -> JobManager:
        m = JobManager(db_url, policy=policy, **kwargs)
        made.append(m)
        return m

    yield make
    if made:
        end_all_jobs(made[-1])
    for m in made:
        m.close()


def end_all_jobs(m: JobManager) -> None:
    """Teardown: stop every active job, wait for the ends, kill anything left behind."""
    for row in m.store.active_rows():
        try:
            m.stop(row["id"])
        except Exception:
            pass
    deadline = time.monotonic() + 10
    while m.store.active_rows() and time.monotonic() < deadline:
        time.sleep(0.05)
    cursor = None
    while True:
        jobs, cursor = m.list(limit=1000, cursor=cursor)
        for job in jobs:
            kill_job_processes(job["id"])
        if cursor is None:
            return


def forge_row(m: JobManager, job_id: str, **values: object) -> None:
    """Rewrite a job row as a crashed host or an old server would have left it."""
    from sqlalchemy import update

    from jupyter_jobctl.db.models import jobs

    with m.store._tx() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


@pytest.fixture
def manager(make_manager: Callable[..., JobManager]) -> JobManager:
    return make_manager()


def wait_status(manager: JobManager, job_id: str, *statuses: str, timeout: float = 60.0) -> dict:
    return wait_for(
        lambda: (j := manager.get(job_id))["status"] in statuses and j,
        timeout,
        f"job {job_id} to become {'/'.join(statuses)}",
    )


def wait_terminal(manager: JobManager, job_id: str, timeout: float = 60.0) -> dict:
    return wait_status(manager, job_id, *TERMINAL, timeout=timeout)


def log_lines(manager: JobManager, job_id: str) -> list[str]:
    lines, after = [], 0
    while True:
        page = manager.events(job_id, after=after, limit=1000)
        if not page:
            return lines
        lines += [e["data"]["line"] for e in page if e["type"] == "log"]
        after = page[-1]["seq"]


def server_config(db_url: str) -> dict:
    """jupyter_server config with the extension on a test database and a short stop ladder."""
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_jobctl": True},
            # every route must carry its own auth decorator: test as the strict setting runs
            "allow_unauthenticated_access": False,
        },
        "JobCtl": {
            "db_url": db_url,
            "interrupt_after": FAST_POLICY.interrupt_after,
            "stop_grace": FAST_POLICY.stop_grace,
            "kill_grace": FAST_POLICY.kill_grace,
            "heartbeat_interval": FAST_POLICY.heartbeat_interval,
            # the server runs inside pytest here: leave pytest's heap to its own collector
            "freeze_startup_heap": False,
        },
    }


@pytest.fixture
def jp_server_config(sqlite_url: str) -> dict:
    return server_config(sqlite_url)


@pytest.fixture
def server_manager(jp_serverapp) -> JobManager:
    """The manager inside the pytest-jupyter server (to look at the database directly)."""
    return jp_serverapp.web_app.settings["jobctl_manager"]


class RealServer:
    """A `jupyter server` subprocess with the extension (for restart and fuzz tests)."""

    def __init__(self, root: Path, db_url: str, port: int | None = None) -> None:
        import secrets
        import sys

        self.root, self.db_url = root, db_url
        self.port = port or _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
            "JUPYTER_CONFIG_DIR": str(root / "config"),
            "JUPYTER_DATA_DIR": str(root / "data"),
        }
        argv = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.port_retries=0",
            "--ServerApp.jpserver_extensions={'jupyter_jobctl': True}",
            f"--JobCtl.db_url={db_url}",
            f"--JobCtl.interrupt_after={FAST_POLICY.interrupt_after}",
            f"--JobCtl.stop_grace={FAST_POLICY.stop_grace}",
            f"--JobCtl.kill_grace={FAST_POLICY.kill_grace}",
            f"--JobCtl.heartbeat_interval={FAST_POLICY.heartbeat_interval}",
        ]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        self.log = open(root / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            argv, env=env, stdout=self.log, stderr=self.log, start_new_session=True
        )
        wait_for(self._healthy, 60, "the Jupyter server to answer /health")

    def _healthy(self) -> bool:
        import urllib.request

        if self.proc.poll() is not None:
            raise AssertionError(
                f"server exited: {(self.root / f'server-{self.port}.log').read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"{self.url}/jobctl/api/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def request(self, method: str, path: str, body: object = None) -> tuple[int, object]:
        import json
        import urllib.error
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/jobctl/api{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read()
                return r.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def kill(self) -> None:
        """kill -9 the whole server (its process group); jobs live in their own sessions."""
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture
def real_server(tmp_path: Path) -> Iterator[Callable[..., RealServer]]:
    servers: list[RealServer] = []
    db_url = f"sqlite:///{tmp_path / 'jobctl.db'}"

    def start(**kwargs) -> RealServer:
        server = RealServer(tmp_path, kwargs.pop("db_url", db_url), **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()
    m = JobManager(db_url, policy=FAST_POLICY)
    try:
        end_all_jobs(m)
    finally:
        m.close()
