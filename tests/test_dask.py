"""The Dask executors against a real cluster: a `dask scheduler` and `dask worker` processes,
a real PostgreSQL server shared by real `jupyter server` processes.

The jobs run on the Dask workers (each task runs the job's usual supervisor); everything a
user does goes through the servers' HTTP and WebSocket API.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import websocket

from conftest import (
    FAST_POLICY,
    SEED,
    TESTS_DIR,
    RealServer,
    end_jobs_on,
    forge_row,
    wait_for,
)
from jupyter_jobctl.core.errors import SpecError
from jupyter_jobctl.manager import JobManager
from jupyter_jobctl.procs import dask_task
from jupyter_jobctl.procs.processes import job_processes
from tests.harness import DaskCluster, PostgresCluster

pytestmark = pytest.mark.slow

SUITE = TESTS_DIR / "batch_suite"
TERMINAL = ("completed", "failed", "cancelled", "lost")
COOP = {"target": "jobs:cooperative", "cwd": str(TESTS_DIR), "config": {"sleep": 0.02}}


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    with DaskCluster(tmp_path_factory.mktemp("dask")) as cluster:
        yield cluster


@pytest.fixture
def pg_url(postgres_server: PostgresCluster) -> str:
    return postgres_server.create_database("dask")


@pytest.fixture
def dask_servers(
    tmp_path: Path, pg_url: str, dask_cluster: DaskCluster
) -> Iterator[Callable[..., RealServer]]:
    """Jupyter servers with the dask executor on one PostgreSQL database; at teardown every
    server is killed and every job stopped, its processes (on this machine) reaped."""
    servers: list[RealServer] = []

    def start(*options: str) -> RealServer:
        home = tmp_path / f"server{len(servers)}"
        home.mkdir()
        dask = ["--JobCtl.executor=dask", f"--JobCtl.dask_address={dask_cluster.address}"]
        server = RealServer(home, pg_url, options=[*dask, *options])
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()
    end_jobs_on(pg_url)


def job_of(server: RealServer, job_id: str) -> dict:
    code, job = server.request("GET", f"/jobs/{job_id}")
    assert code == 200, job
    return job


def reach(server: RealServer, job_id: str, *states: str, timeout: float = 60.0) -> dict:
    return wait_for(
        lambda: (j := job_of(server, job_id))["status"] in states and j,
        timeout,
        f"job {job_id} to become {'/'.join(states)}",
    )


def log_lines(server: RealServer, job_id: str) -> list[str]:
    code, page = server.request("GET", f"/jobs/{job_id}/events?type=log&limit=1000")
    assert code == 200, page
    return [e["data"]["line"] for e in page["events"]]


class Stream:
    """A WebSocket client of one job's stream (``/jobs/{id}/stream``)."""

    def __init__(self, server: RealServer, job_id: str, after: int = 0) -> None:
        self.ws = websocket.create_connection(
            f"{server.ws_url}/jobctl/api/jobs/{job_id}/stream?after={after}",
            header=[f"Authorization: token {server.token}"],
            timeout=60,
            suppress_origin=True,
        )
        self.frames: list[dict] = []

    def until(self, predicate: Callable[[dict], bool], timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            frame = json.loads(self.ws.recv())
            self.frames.append(frame)
            if predicate(frame):
                return frame
        raise AssertionError(f"no such frame within {timeout}s; last: {self.frames[-3:]}")

    def events(self) -> list[dict]:
        return [f for f in self.frames if f["type"] == "event"]

    def close(self) -> None:
        self.ws.close()


def supervisor_parent(server: RealServer, job_id: str) -> psutil.Process:
    """The process that started the job's supervisor (a Dask worker's, on this machine)."""
    from jupyter_jobctl.db.store import Store

    store = Store(server.db_url)
    try:
        pid = store.get_row(job_id)["supervisor_pid"]
    finally:
        store.close()
    assert pid is not None, f"job {job_id} has no supervisor"
    parent = psutil.Process(pid).parent()
    assert parent is not None
    return parent


def _cmd(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return []


# ---------------------------------------------------------------------------- the scenarios


def test_seed_scenario_runs_on_a_dask_worker_and_stops_cleanly(dask_servers, dask_cluster):
    server = dask_servers()
    body = {"kind": "training", "spec": {"target": "jupyter_jobctl.examples.train:main",
                                         "config": SEED}, "start": True}  # fmt: skip
    code, job = server.request("POST", "/jobs", body)
    assert code == 201, job
    stream = Stream(server, job["id"])
    try:
        stream.until(lambda f: "epoch 1/5" in f.get("data", {}).get("line", ""))
        running = job_of(server, job["id"])
        assert running["status"] == "running"
        worker = supervisor_parent(server, job["id"])
        assert worker.pid in {dask_cluster.worker_pid(n) for n in ("w1", "w2")}
        t0 = time.monotonic()
        code, _ = server.request("POST", f"/jobs/{job['id']}/stop")
        assert code == 202 and time.monotonic() - t0 < 2.0
        done = stream.until(lambda f: f["type"] == "done", timeout=30)
    finally:
        stream.close()
    assert done["status"] == "cancelled"
    lines = [f["data"]["line"] for f in stream.events() if f["event"] == "log"]
    assert "[STOP] Stop request received" in lines
    assert "[STOP] Cancellation flag set" in lines
    assert any(line.startswith("[CANCELLATION]") for line in lines)
    seqs = [f["seq"] for f in stream.events()]
    assert seqs == list(range(1, len(seqs) + 1))
    wait_for(lambda: not job_processes(job["id"]), 30, "the job's processes to end")


def test_a_test_batch_runs_on_the_cluster(dask_servers):
    server = dask_servers()
    body = {"kind": "test_batch", "spec": {"args": ["test_basic.py"], "cwd": str(SUITE)},
            "start": True}  # fmt: skip
    code, job = server.request("POST", "/jobs", body)
    assert code == 201, job
    done = reach(server, job["id"], *TERMINAL, timeout=120)
    assert done["status"] == "completed", done
    code, page = server.request("GET", f"/jobs/{job['id']}/results?limit=1000")
    assert code == 200
    outcomes = sorted({r["outcome"] for r in page["results"]})
    assert "passed" in outcomes and "failed" in outcomes
    assert done["counts"]["total"] == len(page["results"]) > 0


def test_placement_runs_where_asked_and_waits_visibly_when_nowhere(dask_servers, dask_cluster):
    server = dask_servers()
    spec = {**COOP, "config": {"steps": 5, "sleep": 0.01}, "workers": ["w2"]}
    code, job = server.request("POST", "/jobs", {"kind": "training", "spec": spec, "start": True})
    assert code == 201, job
    reach(server, job["id"], "running", "completed", timeout=60)
    assert reach(server, job["id"], *TERMINAL)["status"] == "completed"

    # a GPU no worker has: initializing, saying why, until stopped (and then at once)
    spec = {"argv": ["sleep", "600"], "resources": {"GPU": 1}}
    code, queued = server.request("POST", "/jobs", {"kind": "command", "spec": spec, "start": True})
    assert code == 201, queued
    waiting = wait_for(
        lambda: "GPU=1" in (j := job_of(server, queued["id"])).get("reason", "") and j,
        30,
        "the queued job to say why it waits",
    )
    assert waiting["status"] == "initializing"
    assert "none of the cluster's 2 worker(s) has it" in waiting["reason"]
    assert f"[jobctl] {waiting['reason']}" in log_lines(server, queued["id"])  # views see it
    t0 = time.monotonic()
    code, _ = server.request("POST", f"/jobs/{queued['id']}/stop")
    assert code == 202
    done = reach(server, queued["id"], *TERMINAL, timeout=10)
    assert done["status"] == "cancelled" and "never ran" in done["reason"]
    assert time.monotonic() - t0 < 5.0


def test_placement_is_refused_by_the_local_executor(sqlite_url):
    manager = JobManager(sqlite_url, policy=FAST_POLICY)
    try:
        with pytest.raises(SpecError) as err:
            manager.create("command", {"argv": ["true"], "resources": {"GPU": 1}})
        assert "c.JobCtl.executor" in str(err.value) and "spec.resources" in str(err.value)
        with pytest.raises(SpecError, match="positive number"):
            manager.create("command", {"argv": ["true"], "resources": {"GPU": 0}})
        assert manager.list()[0] == []  # nothing half-written
    finally:
        manager.close()


def test_a_dask_worker_that_dies_takes_its_job_to_lost(dask_servers, dask_cluster):
    dask_cluster.add_worker("w3")
    server = dask_servers()
    spec = {**COOP, "workers": ["w3"]}
    code, job = server.request("POST", "/jobs", {"kind": "training", "spec": spec, "start": True})
    assert code == 201, job
    reach(server, job["id"], "running")
    assert supervisor_parent(server, job["id"]).pid == dask_cluster.worker_pid("w3")
    t0 = time.monotonic()
    dask_cluster.kill_worker("w3")
    lost = reach(server, job["id"], *TERMINAL, timeout=60)
    took = time.monotonic() - t0
    assert lost["status"] == "lost", lost
    assert "no exit was recorded" in lost["reason"]
    assert took < 20, f"lost after {took:.1f} s"
    wait_for(lambda: not job_processes(job["id"]), 30, "the job's processes to end with it")


def test_a_rerun_of_the_task_does_not_run_the_job_again(dask_servers, pg_url):
    server = dask_servers()
    spec = {**COOP, "config": {"steps": 3, "sleep": 0.01}}
    _, job = server.request("POST", "/jobs", {"kind": "training", "spec": spec, "start": True})
    running = reach(server, job["id"], "running", "completed")
    # Dask reruns a task whose worker died: this is that second run, while the first runs
    result = dask_task.run_attempt(job["id"], running["attempt"], pg_url, {})
    assert result["exit"] == 0
    done = reach(server, job["id"], *TERMINAL)
    assert done["status"] == "completed"
    starts = [e for e in log_lines(server, job["id"]) if e.startswith("Traceback")]
    assert not starts
    _, page = server.request("GET", f"/jobs/{job['id']}/events?type=status")
    assert [e["data"]["status"] for e in page["events"]].count("running") == 1


def test_a_restarted_server_readopts_cluster_jobs_and_stops_them(dask_servers):
    first = dask_servers()
    _, job = first.request("POST", "/jobs", {"kind": "training", "spec": COOP, "start": True})
    reach(first, job["id"], "running")
    first.kill()
    second = dask_servers()
    before = reach(second, job["id"], "running")
    wait_for(
        lambda: (
            (job_of(second, job["id"])["progress"]["done"] or 0) > (before["progress"]["done"] or 0)
        ),
        30,
        "progress after the restart",
    )
    code, _ = second.request("POST", f"/jobs/{job['id']}/stop")
    assert code == 202
    assert reach(second, job["id"], *TERMINAL, timeout=30)["status"] == "cancelled"


def test_two_servers_share_every_job_and_stream_it_without_gaps(dask_servers):
    # B polls the database only every 60 s: what reaches its stream sooner came by NOTIFY
    a, b = dask_servers(), dask_servers("--JobCtl.listen_poll_interval=60")
    _, job = a.request("POST", "/jobs", {"kind": "training", "spec": COOP, "start": True})
    stream = Stream(b, job["id"])
    try:
        stream.until(lambda f: f.get("event") == "status" and f["data"]["status"] == "running")
        stream.until(lambda f: f.get("event") == "progress", timeout=20)
        code, listed = b.request("GET", "/jobs?status=running")
        assert code == 200 and job["id"] in [j["id"] for j in listed["jobs"]]
        code, _ = b.request("POST", f"/jobs/{job['id']}/stop")  # B stops what A started
        assert code == 202
        done = stream.until(lambda f: f["type"] == "done", timeout=30)
    finally:
        stream.close()
    assert done["status"] == "cancelled"
    seqs = [f["seq"] for f in stream.events()]
    assert seqs == list(range(1, len(seqs) + 1)) and seqs[-1] == done["last_seq"]
    assert job_of(a, job["id"])["status"] == "cancelled"


def test_a_supervisor_nobody_here_can_see_is_lost_by_its_heartbeat(pg_url):
    """Another machine's supervisor: no process to look at, only its heartbeat."""
    manager = JobManager(pg_url, policy=FAST_POLICY)
    try:
        job, _ = manager.create("command", {"argv": ["true"]})
        row = manager.store.start_job(job["id"], interrupt_after=1, stop_grace=1, kill_grace=1,
                                      heartbeat_interval=0.3)  # fmt: skip
        now = time.time()
        forge_row(manager, job["id"], status="running", host="gpu-node-7", boot_id="elsewhere",
                  supervisor_pid=4242, supervisor_start=1, heartbeat_at=now)  # fmt: skip
        assert manager.reconcile()["adopted"] == [job["id"]]  # a fresh heartbeat: alive
        forge_row(manager, job["id"], heartbeat_at=now - 60)
        assert manager.reconcile()["lost"] == [job["id"]]
        lost = manager.get(job["id"])
        assert lost["status"] == "lost" and "gpu-node-7" in lost["reason"]
        assert "stopped sending heartbeats" in lost["reason"]
        assert row["attempt"] == 1
    finally:
        manager.close()


def test_dask_local_runs_a_job_on_a_cluster_of_its_own(tmp_path, pg_url):
    server = RealServer(tmp_path, pg_url, options=["--JobCtl.executor=dask-local"])
    try:
        spec = {**COOP, "config": {"steps": 200, "sleep": 0.02}}
        _, job = server.request("POST", "/jobs", {"kind": "training", "spec": spec, "start": True})
        reach(server, job["id"], "running", timeout=120)
        worker = supervisor_parent(server, job["id"])
        # the supervisor's parent is a Dask worker process of the server's own LocalCluster
        assert worker.pid != server.proc.pid
        assert server.proc.pid in [p.pid for p in worker.parents()]
        done = reach(server, job["id"], *TERMINAL, timeout=120)
        assert done["status"] == "completed", done
    finally:
        server.stop()
        end_jobs_on(pg_url)


def test_every_change_is_notified_to_listeners(pg_url, tmp_path):
    """The push behind the streams of several servers: NOTIFY on commit, per job."""
    from jupyter_jobctl.db.store import Store

    heard: list[str | None] = []
    writer, listener_store = Store(pg_url), Store(pg_url)
    writer.upgrade()
    listener = listener_store.listen(heard.append)
    assert listener is not None
    try:
        wait_for(listener.connected.is_set, 30, "LISTEN to connect")
        wait_for(lambda: None in heard, 10, "the look-at-everything call on connecting")
        job, _ = writer.create_job("command", "n", {"argv": ["true"]})
        wait_for(lambda: job["id"] in heard, 10, "the creation's NOTIFY")
        count = heard.count(job["id"])
        writer.request_stop(job["id"])  # pending -> cancelled: one more change
        wait_for(lambda: heard.count(job["id"]) > count, 10, "the stop's NOTIFY")
    finally:
        listener.close()
        writer.close()
        listener_store.close()
    sqlite = Store(f"sqlite:///{tmp_path / 'jobctl.db'}")
    assert sqlite.listen(heard.append) is None  # SQLite: no push, the tail poll it is
    sqlite.close()
