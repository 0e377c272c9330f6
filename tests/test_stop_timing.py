"""A stop acts from the first instant of a job (issue 13 §1), whatever its database does.

The worker opens its database connection in the background (SQLAlchemy's import alone is
~200 ms, far more on a loaded machine or a cold disk). These jobs make that import take a
minute (a ``sitecustomize`` on the job's ``PYTHONPATH`` delays ``import sqlalchemy`` in the
worker only): a stop must still take the cooperative rung at once — no SIGINT — and the
job's reports so far must still be stored (the supervisor writes them). The assertions are
about which rung ended the job, never about milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import SQLITE_ONLY, TESTS_DIR, log_lines, wait_for, wait_status, wait_terminal
from jupyter_jobctl.manager import JobManager, StopPolicy
from jupyter_jobctl.procs import handshake
from jupyter_jobctl.procs.processes import job_processes

# processes and rungs, not the store, are under test: SQLite alone (SQLITE_ONLY) proves it
# the SIGINT rung soon, SIGTERM far: a job that waited for its store would show one of them
POLICY = StopPolicy(interrupt_after=0.3, stop_grace=8.0, kill_grace=2.0, heartbeat_interval=0.3)
SLOW_IMPORT = '''
import importlib.machinery, os, sys, time

class _SlowLoader:
    """Runs sqlalchemy's __init__ late: like a cold disk, without the global import lock
    (a finder that slept would hold it and stall every import of every thread)."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def exec_module(self, module):
        time.sleep(float(os.environ.get("SLOW_SQLALCHEMY", "60")))
        self.real.exec_module(module)

class _SlowSQLAlchemy:
    def find_spec(self, name, path=None, target=None):
        if name != "sqlalchemy":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None:
            spec.loader = _SlowLoader(spec.loader)
        return spec

sys.meta_path.insert(0, _SlowSQLAlchemy())
'''


@pytest.fixture
def slow_store(tmp_path: Path) -> dict[str, str]:
    """The job env that makes the worker's ``import sqlalchemy`` take a minute."""
    site = tmp_path / "slow-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_IMPORT)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "SLOW_SQLALCHEMY": "60"}


def training(target: str, env: dict[str, str], **config: object) -> dict:
    return {"target": f"jobs:{target}", "config": config, "cwd": str(TESTS_DIR), "env": env}


def statuses(manager: JobManager, job_id: str) -> list[str]:
    return [e["data"]["status"] for e in manager.events(job_id) if e["type"] == "status"]


def signals(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("[STOP] signal")]


@SQLITE_ONLY
def test_stop_at_once_after_running_takes_the_checkpoint(
    make_manager, slow_store: dict[str, str]
) -> None:
    manager = make_manager(POLICY)
    spec = training("cooperative", slow_store, sleep=0.005)
    job, _ = manager.create("training", spec, start=True)
    wait_status(manager, job["id"], "running", "stopping", "cancelled")
    manager.stop(job["id"])
    done = wait_terminal(manager, job["id"], timeout=20)
    lines = log_lines(manager, job["id"])
    assert done["status"] == "cancelled", (done, lines)
    assert any(line.startswith("[CANCELLATION] stopped at checkpoint") for line in lines), lines
    assert signals(lines) == [], lines  # no SIGINT: the checkpoint did it
    assert statuses(manager, job["id"]) == [
        "pending",
        "initializing",
        "running",
        "stopping",
        "cancelled",
    ]
    assert job_processes(job["id"]) == []


@SQLITE_ONLY
def test_stop_while_initializing_ends_the_worker_before_the_job_starts(
    make_manager, slow_store: dict[str, str]
) -> None:
    manager = make_manager(POLICY)
    spec = training("cooperative", slow_store, sleep=0.005)
    job, _ = manager.create("training", spec, start=True)
    assert job["status"] == "initializing"
    manager.stop(job["id"])  # the worker is still starting: none of the job's code ran
    done = wait_terminal(manager, job["id"], timeout=20)
    lines = log_lines(manager, job["id"])
    assert done["status"] == "cancelled", (done, lines)
    # not told GO, the worker had run only jobctl's start-up: it was ended at once
    assert "[CANCELLATION] stopped before the job's code started" in lines, lines
    assert done["reason"] == "Stopped before the job started."
    assert done.get("signal") is None and done.get("exit_code") is None
    assert signals(lines) == [], lines
    assert statuses(manager, job["id"]) == ["pending", "initializing", "stopping", "cancelled"]
    assert job_processes(job["id"]) == []


@SQLITE_ONLY
def test_job_blocked_in_sleep_takes_sigint_without_waiting_for_its_store(
    make_manager, slow_store: dict[str, str], tmp_path: Path
) -> None:
    manager = make_manager(POLICY)
    marker, pid_file = tmp_path / "finally", tmp_path / "pid"
    spec = training("sleeper", slow_store, finally_file=str(marker), pid_file=str(pid_file))
    job, _ = manager.create("training", spec, start=True)
    wait_for(pid_file.exists, 30, "the job's code to start")  # then it sleeps at once
    manager.stop(job["id"])
    done = wait_terminal(manager, job["id"], timeout=20)
    lines = log_lines(manager, job["id"])
    assert done["status"] == "cancelled", (done, lines)
    assert "[CANCELLATION] interrupted by SIGINT" in lines
    # SIGINT alone: a worker that waited for its store would have met SIGTERM at stop_grace
    assert [line.split()[2] for line in signals(lines)] == ["SIGINT"], lines
    assert marker.read_text() == "unwound"


@SQLITE_ONLY
def test_quick_jobs_complete_before_their_store_opens(
    make_manager, slow_store: dict[str, str]
) -> None:
    manager = make_manager(POLICY)
    quick, _ = manager.create("training", training("quick", slow_store), start=True)
    chatty, _ = manager.create("training", training("chatty", slow_store, count=5), start=True)
    # far less than the minute the store takes to open: the supervisor wrote the reports
    done = wait_terminal(manager, quick["id"], timeout=20)
    assert done["status"] == "completed" and done["exit_code"] == 0
    lines = log_lines(manager, quick["id"])
    assert "quick job done" in lines and "printed to stdout" in lines
    done = wait_terminal(manager, chatty["id"], timeout=20)
    assert done["status"] == "completed"
    assert log_lines(manager, chatty["id"]) == [f"line {i}" for i in range(5)] + ["total 5"]
    metrics = [e["data"] for e in manager.events(chatty["id"]) if e["type"] == "metric"]
    assert metrics == [{"step": i, "value": i} for i in range(5)]
    assert done["metrics"] == {"value": 4}  # the row's latest fields came along


@SQLITE_ONLY
def test_demo_trainer_stopped_at_once_takes_a_checkpoint(make_manager) -> None:
    """The demo trainer checkpoints while it initialises (around numpy's import and the
    data): however long that import takes on this machine, the next checkpoint stops it."""
    manager = make_manager(
        StopPolicy(interrupt_after=10.0, stop_grace=15.0, kill_grace=2.0, heartbeat_interval=0.3)
    )
    spec = {"target": "jupyter_jobctl.examples.train:main", "config": {"epochs": 3}}
    job, _ = manager.create("training", spec, start=True)
    wait_status(manager, job["id"], "running", "stopping", "cancelled")
    manager.stop(job["id"])
    done = wait_terminal(manager, job["id"], timeout=20)
    lines = log_lines(manager, job["id"])
    assert done["status"] == "cancelled", lines
    assert any(line.startswith("[CANCELLATION] stopped at checkpoint") for line in lines), lines
    assert signals(lines) == [], lines


def test_inbox_reassembles_frames_split_anywhere() -> None:
    import socket

    a, b = socket.socketpair()
    with a, b:
        a.sendall(handshake.READY)
        handshake.send_events(a, [["log", {"line": "é" * 3}], ["metric", {"x": 1}]], {"k": 2})
        handshake.send_events(a, [], {})
        a.shutdown(socket.SHUT_WR)
        raw = b""
        while chunk := b.recv(7):
            raw += chunk
    inbox = handshake.Inbox()
    got = []
    for i in range(0, len(raw), 3):  # three bytes at a time: frames cut in every place
        got += inbox.feed(raw[i : i + 3])
    assert got == [
        handshake.READY,
        ([("log", {"line": "ééé"}), ("metric", {"x": 1})], {"k": 2}),
        ([], {}),
    ]
