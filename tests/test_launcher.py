"""The warm launcher: supervisors forked from it, a dead launcher falls back, close ends it."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Callable

import psutil
import pytest

from conftest import TESTS_DIR, log_lines, wait_for, wait_status, wait_terminal
from jupyter_jobctl.manager import JobManager


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    # the launcher forks supervisors whatever the database: the store's SQLite/PostgreSQL
    # parity is proven in test_store/test_engine
    return sqlite_url


def cooperative(**config: object) -> dict:
    return {"target": "jobs:cooperative", "config": config, "cwd": str(TESTS_DIR)}


def quick() -> dict:
    return {"target": "jobs:quick", "config": {}, "cwd": str(TESTS_DIR)}


def parent_of(pid: int) -> int:
    return psutil.Process(pid).ppid()


def test_supervisors_are_forked_by_the_launcher(manager: JobManager) -> None:
    manager.warm()
    launcher = manager.executor.launcher_pid()
    assert launcher is not None and psutil.pid_exists(launcher)
    job, _ = manager.create("training", cooperative(), start=True)
    row = wait_status(manager, job["id"], "running")
    sup = manager.store.get_row(job["id"])["supervisor_pid"]
    assert parent_of(sup) == launcher
    assert os.getsid(sup) == sup  # its own session: it outlives the server
    # the worker is a fresh Python (not a fork), so it carries the job's environment marker
    worker = psutil.Process(manager.store.get_row(job["id"])["worker_pid"])
    assert worker.environ().get("JOBCTL_JOB_ID") == job["id"]
    assert " ".join(worker.cmdline()).startswith(f"jobctl worker {job['id']}")  # its title
    manager.stop(job["id"])
    assert wait_terminal(manager, job["id"])["status"] == "cancelled"
    assert row["status"] == "running"
    done, _ = manager.create("training", quick(), start=True)
    assert wait_terminal(manager, done["id"])["status"] == "completed"
    assert "quick job done" in log_lines(manager, done["id"])
    # the launcher reaps finished supervisors: none stays a zombie
    wait_for(lambda: manager.executor.pending_children() == 0, what="supervisors to exit")
    wait_for(
        lambda: not [c for c in psutil.Process(launcher).children() if c.status() == "zombie"],
        what="the launcher to reap its children",
    )


def test_a_dead_launcher_falls_back_to_fresh_supervisors(manager: JobManager) -> None:
    manager.warm()
    launcher = manager.executor.launcher_pid()
    assert launcher is not None
    os.kill(launcher, signal.SIGKILL)
    wait_for(lambda: manager.executor.launcher_pid() is None, what="the launcher to die")
    job, _ = manager.create("training", quick(), start=True)
    assert wait_terminal(manager, job["id"])["status"] == "completed"
    sup = manager.store.get_row(job["id"])["supervisor_pid"]
    assert sup is not None and sup != launcher


def test_closing_the_manager_ends_the_launcher_not_the_jobs(
    make_manager: Callable[..., JobManager],
) -> None:
    first = make_manager()
    first.warm()
    launcher = first.executor.launcher_pid()
    job, _ = first.create("training", cooperative(), start=True)
    wait_status(first, job["id"], "running")
    first.close()
    assert launcher is not None and not psutil.pid_exists(launcher)  # close() waited for it
    assert first.executor.launcher_pid() is None
    second = make_manager()
    outcome = second.reconcile()
    assert job["id"] in outcome["adopted"]
    assert second.get(job["id"])["status"] == "running"
    second.stop(job["id"])
    assert wait_terminal(second, job["id"])["status"] == "cancelled"


def test_the_jobs_code_sees_no_start_up_plumbing(manager: JobManager, tmp_path) -> None:
    out = tmp_path / "seen.json"
    spec = {"target": "jobs:report_environment", "config": {"out": str(out)}, "cwd": str(TESTS_DIR)}
    job, _ = manager.create("training", spec, start=True)
    assert wait_terminal(manager, job["id"])["status"] == "completed"
    seen = json.loads(out.read_text())
    # the handshake socket and the launch plan are taken out before the job's code runs
    assert seen["env"] == ["JOBCTL_ATTEMPT", "JOBCTL_DB_URL", "JOBCTL_JOB_ID"]
    assert seen["running"]
    statuses = [e["data"]["status"] for e in manager.events(job["id"]) if e["type"] == "status"]
    assert statuses == ["pending", "initializing", "running", "completed"]


def _supervise_once(end: socket.socket, status: str) -> None:
    from jupyter_jobctl.procs import handshake

    if end.recv(1) == handshake.READY:
        handshake.answer(end, status)


def test_handshake_answers(monkeypatch) -> None:
    from jupyter_jobctl.procs import handshake

    for status, expected in (("running", True), ("paused", True), ("stopping", False)):
        ours, theirs = socket.socketpair()
        monkeypatch.setenv(handshake.FD_ENV, str(theirs.detach()))
        end = handshake.worker_end()
        assert end is not None and handshake.FD_ENV not in os.environ
        ours.settimeout(5)
        answered = threading.Thread(target=_supervise_once, args=(ours, status))
        answered.start()
        stopped = threading.Event()
        assert handshake.WorkerEnd(end, stopped.set).ready() is expected
        assert stopped.is_set() is not expected  # told STOP: the runtime's flag is set
        answered.join()
        ours.close()
    # a supervisor that vanished before answering: the job's code must not start
    ours, theirs = socket.socketpair()
    ours.close()
    assert handshake.WorkerEnd(theirs, lambda: None).ready() is False
    monkeypatch.delenv(handshake.FD_ENV, raising=False)
    assert handshake.worker_end() is None


def test_job_nice_lowers_the_jobs_priority_only(make_manager: Callable[..., JobManager]) -> None:
    manager = make_manager(job_nice=7)
    job, _ = manager.create("training", cooperative(), start=True)
    wait_status(manager, job["id"], "running")
    row = manager.store.get_row(job["id"])
    base = psutil.Process().nice()
    assert psutil.Process(row["worker_pid"]).nice() == min(base + 7, 19)
    assert psutil.Process(row["supervisor_pid"]).nice() == base  # the control plane is not
    manager.stop(job["id"])
    assert wait_terminal(manager, job["id"])["status"] == "cancelled"


def test_the_supervisor_can_say_stop_before_ready_and_after_go() -> None:
    from jupyter_jobctl.procs import handshake

    # before READY (the job is still initializing): the flag is set, the job never starts
    ours, theirs = socket.socketpair()
    stopped = threading.Event()
    ours.sendall(handshake.STOP)
    end = handshake.WorkerEnd(theirs, stopped.set)
    assert stopped.wait(5) and end.ready() is False
    ours.close()
    # after GO
    ours, theirs = socket.socketpair()
    stopped = threading.Event()
    end = handshake.WorkerEnd(theirs, stopped.set)
    ours.sendall(handshake.GO)
    assert end.ready() is True and not stopped.is_set()
    ours.sendall(handshake.STOP)
    assert stopped.wait(5)
    ours.close()
    # the supervisor went away without a word: no stop from here
    ours, theirs = socket.socketpair()
    stopped = threading.Event()
    end = handshake.WorkerEnd(theirs, stopped.set)
    ours.close()
    assert end.ready() is False and not stopped.is_set()


def test_a_stop_said_by_the_supervisor_sets_the_flag_at_once(tmp_path) -> None:
    from jupyter_jobctl import runtime as jc

    job = jc.Job("j", 1, {}, open_store=lambda: (_ for _ in ()).throw(OSError("no database")))
    try:
        job.checkpoint()  # nothing requested yet
        job.stop_now()
        assert job.should_stop()
        try:
            job.checkpoint("step 3")
        except jc.Cancelled as exc:
            assert "step 3" in str(exc)
        else:
            raise AssertionError("checkpoint did not raise after the supervisor's stop")
        job._apply_status("running", None)  # an older row read must not undo the stop
        assert job.should_stop()
    finally:
        job._closed.set()
