"""200 create/start/stop cycles: no leaked processes, file descriptors or threads."""

from __future__ import annotations

import threading

import psutil
import pytest

from conftest import FAST_POLICY, TESTS_DIR, wait_for, wait_status
from jupyter_jobctl.core.states import TERMINAL
from jupyter_jobctl.manager import JobManager
from jupyter_jobctl.procs.processes import job_processes

SPEC = {"target": "jobs:cooperative", "config": {}, "cwd": str(TESTS_DIR)}
BATCH = 10


def _cycle_batch(manager: JobManager, batch: int) -> list[str]:
    ids = [manager.create("training", SPEC, start=True)[0]["id"] for _ in range(BATCH)]
    for i, job_id in enumerate(ids):
        # vary the stop point: right after start, or once the job is running
        if (batch + i) % 2:
            wait_status(manager, job_id, "running", *TERMINAL, timeout=120)
        manager.stop(job_id)
    for job_id in ids:
        wait_status(manager, job_id, *TERMINAL, timeout=120)
    return ids


@pytest.mark.slow
def test_two_hundred_cycles_leak_nothing(sqlite_url: str) -> None:
    me = psutil.Process()
    # under xdist this process may already own session servers (Jupyter, PostgreSQL)
    before = {c.pid for c in me.children(recursive=True)}
    manager = JobManager(sqlite_url, policy=FAST_POLICY)
    try:
        all_ids = _cycle_batch(manager, 0)  # warm-up: connection pools, imports
        wait_for(lambda: manager.executor.pending_children() == 0, what="supervisors to exit")
        fds, threads = me.num_fds(), threading.active_count()
        for batch in range(1, 200 // BATCH):
            all_ids += _cycle_batch(manager, batch)
        assert len(all_ids) == 200
        wait_for(lambda: manager.executor.pending_children() == 0, what="supervisors to exit")
        launcher = manager.executor.launcher_pid()
        assert launcher is not None  # supervisors were forked by the one warm launcher
        leftover = [
            c.pid
            for c in me.children(recursive=True)
            if c.status() != "zombie" and c.pid not in before
        ]
        assert leftover == [launcher]
        statuses = {manager.get(j)["status"] for j in all_ids}
        assert statuses == {"cancelled"}
        assert me.num_fds() <= fds + 2, (fds, me.num_fds())
        assert threading.active_count() <= threads, (threads, threading.active_count())
        assert all(job_processes(j) == [] for j in all_ids[-BATCH:])
        assert manager.store.active_rows() == []
    finally:
        manager.close()
    # closing the manager ends the launcher; nothing else of ours is left
    left = me.children(recursive=True)
    assert [c for c in left if c.status() != psutil.STATUS_ZOMBIE and c.pid not in before] == []
