"""kill -9 of a real `jupyter server` while a job runs; a new server on the same database."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from conftest import TESTS_DIR, wait_for
from jupyter_jobctl.procs.processes import job_processes

COOP = {
    "kind": "training",
    "spec": {"target": "jobs:cooperative", "cwd": str(TESTS_DIR)},
    "start": True,
}


def _status(server, job_id: str) -> dict:
    code, job = server.request("GET", f"/jobs/{job_id}")
    assert code == 200
    return job


@pytest.mark.slow
def test_job_survives_server_kill_and_is_readopted(real_server) -> None:
    first = real_server()
    code, job = first.request("POST", "/jobs", COOP)
    assert code == 201
    wait_for(lambda: _status(first, job["id"])["status"] == "running", what="running")
    first.kill()
    assert _alive(job["id"])  # the job never lived in the server

    second = real_server()
    before = _status(second, job["id"])
    assert before["status"] == "running"
    wait_for(
        lambda: (
            (_status(second, job["id"])["progress"]["done"] or 0)
            > (before["progress"]["done"] or 0)
        ),
        what="progress after restart",
    )
    code, _ = second.request("POST", f"/jobs/{job['id']}/stop")
    assert code == 202
    done = wait_for(
        lambda: (j := _status(second, job["id"]))["status"] == "cancelled" and j, what="cancelled"
    )
    assert done["status"] == "cancelled"
    wait_for(lambda: not _alive(job["id"]), what="job processes gone")


@pytest.mark.slow
def test_job_that_died_while_no_server_ran_ends_lost(real_server) -> None:
    first = real_server()
    _, job = first.request("POST", "/jobs", COOP)
    wait_for(lambda: _status(first, job["id"])["status"] == "running", what="running")
    first.kill()
    from jupyter_jobctl.db.store import Store

    store = Store(first.db_url)
    row = store.get_row(job["id"])
    # both die at once (an OOM kill, a reboot): supervisor first, so nobody records the end
    os.kill(row["supervisor_pid"], signal.SIGKILL)
    for ident in job_processes(job["id"]):  # the worker (fate-shared with the supervisor)
        os.kill(ident.pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(row["supervisor_pid"]), what="supervisor gone")
    wait_for(lambda: not job_processes(job["id"]), what="worker gone")
    # lost needs silence too: the heartbeat must be older than 3 intervals (3 x 0.3 s)
    wait_for(
        lambda: time.time() - store.get_row(job["id"])["heartbeat_at"] > 1.0,
        what="a stale heartbeat",
    )
    store.close()

    second = real_server()
    done = wait_for(
        lambda: (j := _status(second, job["id"]))["status"] == "lost" and j, timeout=20, what="lost"
    )
    assert "gone" in done["reason"]


def _alive(job_id: str) -> bool:
    return bool(job_processes(job_id))
