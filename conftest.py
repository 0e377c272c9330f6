"""Shared fixtures: real SQLite files, a real PostgreSQL server, managers with short graces.

The real processes (a ``jupyter server`` subprocess, a PostgreSQL cluster) come from
``tests/harness.py``, which the benchmarks share.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from jupyter_jobctl.core.states import TERMINAL
from jupyter_jobctl.manager import JobManager, StopPolicy
from jupyter_jobctl.procs.processes import kill_job_processes
from tests.harness import JupyterServer, PostgresCluster, jobctl_options, merge_options, pg_bin
from tests.harness import wait_for as wait_for  # the tests import it from here

# pytest-jupyter has no entry point; it must be declared in the root conftest
pytest_plugins = ["pytest_jupyter.jupyter_server"]

# the suite that test batches run: collected only by jobctl workers, never by this run
collect_ignore = ["tests/batch_suite"]

TESTS_DIR = Path(__file__).parent / "tests"
# the seed scenario's config for the demo trainer (docs/architecture.md)
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
FAST_OPTIONS = {
    "interrupt_after": FAST_POLICY.interrupt_after,
    "stop_grace": FAST_POLICY.stop_grace,
    "kill_grace": FAST_POLICY.kill_grace,
    "heartbeat_interval": FAST_POLICY.heartbeat_interval,
}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresCluster]:
    """A throw-away PostgreSQL cluster for the session (one per xdist worker)."""
    bin_dir = pg_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; `make test` installs Debian postgresql.")
        pytest.skip("PostgreSQL is not installed (run `make test`)")
    with PostgresCluster(bin_dir, max_connections=200) as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One fresh database per test, on each backend (``SQLITE_ONLY``: on SQLite alone)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobctl.db'}"
    return request.getfixturevalue("postgres_server").create_database()


# For a test of the processes (signals, sessions, environments) rather than of the store:
# the database only records what happened, and PostgreSQL would prove nothing more.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


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


def end_jobs_on(db_url: str) -> None:
    """Teardown of a test's servers' database: every job ended, every process killed."""
    m = JobManager(db_url, policy=FAST_POLICY)
    try:
        end_all_jobs(m)
    finally:
        m.close()


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


class RealServer(JupyterServer):
    """A `jupyter server` subprocess with the extension on ``db_url`` and the short stop
    ladder, started (and healthy) on construction; ``request`` paths are under the API."""

    def __init__(
        self,
        root: Path,
        db_url: str,
        port: int | None = None,
        options: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        options = merge_options(jobctl_options(db_url, **FAST_OPTIONS), options)
        super().__init__(root, options, port=port, env=env, name="jobctl")
        self.db_url = db_url
        self.start()


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
    end_jobs_on(db_url)
