"""Test batches stop and pause between tests (issue 13 §2).

Each suite here is written to a temporary folder; every test appends its node id to
``started`` when it begins, so what pytest started is known whatever it reported.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import log_lines, wait_for, wait_terminal
from jupyter_jobctl.manager import JobManager, StopPolicy

INI = "[pytest]\naddopts = -p no:cacheprovider -p no:schemathesis -p no:hypothesispytest\n"
SUITE = """
import os, time, pytest

@pytest.mark.parametrize("i", range({count}))
def test_step(i):
    with open(os.environ["STARTED_FILE"], "a") as fh:
        fh.write(f"{{i}}\\n")
    time.sleep({seconds})
"""
# the SIGINT rung far away: a test that finishes within it is never interrupted
PATIENT = StopPolicy(interrupt_after=20.0, stop_grace=30.0, kill_grace=2.0, heartbeat_interval=0.3)


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    return sqlite_url  # pytest in a worker, not the store's backends, is under test


def suite(tmp_path: Path, count: int, seconds: float) -> tuple[dict, Path]:
    """A batch spec of ``count`` tests of ``seconds`` each, and the file they mark."""
    (tmp_path / "pytest.ini").write_text(INI)
    (tmp_path / "test_steps.py").write_text(SUITE.format(count=count, seconds=seconds))
    started = tmp_path / "started"
    spec = {"args": ["-q"], "cwd": str(tmp_path), "env": {"STARTED_FILE": str(started)}}
    return spec, started


def started(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def summary(manager: JobManager, job_id: str) -> dict:
    found = [e["data"] for e in manager.events(job_id, limit=1000) if e["type"] == "summary"]
    assert len(found) == 1, found
    return found[0]


def results(manager: JobManager, job_id: str) -> list[dict]:
    return manager.results(job_id, limit=1000)[0]


def test_stop_during_a_test_lets_it_finish_and_starts_no_other(make_manager, tmp_path) -> None:
    manager = make_manager(PATIENT)
    spec, marks = suite(tmp_path, count=8, seconds=1.0)
    job, _ = manager.create("test_batch", spec, start=True)
    wait_for(lambda: len(started(marks)) == 2, 60, "the second test to start")
    manager.stop(job["id"])  # during test 2
    done = wait_terminal(manager, job["id"], timeout=60)
    assert done["status"] == "cancelled"
    assert started(marks) == ["0", "1"]  # test 2 finished; test 3 never started
    rows = results(manager, job["id"])
    assert [r["outcome"] for r in rows] == ["passed", "passed"]
    assert done["counts"] == {"total": 8, "completed": 2, "passed": 2, "failed": 0, "skipped": 0}
    data = summary(manager, job["id"])
    assert data["stopped"] is True and "error" not in data
    assert data["message"] == "Stopped by request after 2 of 8 tests."
    assert data["exit_code"] == done["exit_code"] == pytest.ExitCode.INTERRUPTED == 2
    lines = log_lines(manager, job["id"])
    assert not [line for line in lines if line.startswith("[STOP] signal")], lines
    assert done["reason"] == "Stopped by request (worker exit code 2)."


def test_stop_interrupts_a_test_that_runs_on(make_manager, tmp_path) -> None:
    manager = make_manager(
        StopPolicy(interrupt_after=0.5, stop_grace=10.0, kill_grace=2.0, heartbeat_interval=0.3)
    )
    spec, marks = suite(tmp_path, count=3, seconds=60.0)
    job, _ = manager.create("test_batch", spec, start=True)
    wait_for(lambda: started(marks), 60, "the first test to start")
    manager.stop(job["id"])
    done = wait_terminal(manager, job["id"], timeout=60)
    assert done["status"] == "cancelled"
    assert started(marks) == ["0"]
    lines = log_lines(manager, job["id"])
    # SIGINT ended the test; nothing needed SIGTERM
    assert [line.split()[2] for line in lines if line.startswith("[STOP] signal")] == ["SIGINT"]
    (row,) = results(manager, job["id"])
    assert row["nodeid"] == "test_steps.py::test_step[0]" and row["outcome"] == "error"
    assert row["message"].startswith("Interrupted: the batch was stopped while this test ran")
    data = summary(manager, job["id"])
    assert data["stopped"] is True and data["exit_code"] == done["exit_code"] == 2
    assert done["counts"]["completed"] == 1 and done["counts"]["failed"] == 1


def test_pause_holds_the_next_test_and_resume_goes_on(make_manager, tmp_path) -> None:
    manager = make_manager(PATIENT)
    spec, marks = suite(tmp_path, count=6, seconds=0.4)
    job, _ = manager.create("test_batch", spec, start=True)
    wait_for(lambda: len(started(marks)) >= 2, 60, "two tests to start")
    assert manager.pause(job["id"])["status"] == "paused"
    wait_for(
        lambda: "[PAUSE] paused at checkpoint" in log_lines(manager, job["id"]), 30, "the pause"
    )
    held = started(marks)
    assert len(held) <= 3  # the test that ran when the pause came may finish, no other starts
    time.sleep(1.5)  # three tests' worth
    assert started(marks) == held
    row = manager.get(job["id"])
    assert row["status"] == "paused" and row["counts"]["completed"] == len(held)
    assert manager.resume(job["id"])["status"] == "running"
    done = wait_terminal(manager, job["id"], timeout=60)
    assert done["status"] == "completed"
    assert started(marks) == [str(i) for i in range(6)]  # each test once, in order
    assert sorted(r["nodeid"] for r in results(manager, job["id"])) == sorted(
        f"test_steps.py::test_step[{i}]" for i in range(6)
    )
    assert summary(manager, job["id"])["exit_code"] == 0
    assert "[PAUSE] resumed" in log_lines(manager, job["id"])


def test_stop_of_a_paused_batch_starts_no_test(make_manager, tmp_path) -> None:
    manager = make_manager(PATIENT)
    spec, marks = suite(tmp_path, count=6, seconds=0.4)
    job, _ = manager.create("test_batch", spec, start=True)
    wait_for(lambda: started(marks), 60, "the first test to start")
    manager.pause(job["id"])
    wait_for(
        lambda: "[PAUSE] paused at checkpoint" in log_lines(manager, job["id"]), 30, "the pause"
    )
    held = started(marks)
    manager.stop(job["id"])
    done = wait_terminal(manager, job["id"], timeout=60)
    assert done["status"] == "cancelled" and started(marks) == held
    data = summary(manager, job["id"])
    assert data["stopped"] is True and data["exit_code"] == 2
    assert done["counts"]["completed"] == len(held)


def test_rate_of_bursty_results_stays_near_the_true_rate(make_manager, tmp_path) -> None:
    """pytest-xdist hands results over in bursts; the rate must not read them as ~1000/s."""
    manager = make_manager(PATIENT)
    spec, _ = suite(tmp_path, count=16, seconds=0.3)
    spec["args"] = ["-q", "-n", "2"]
    job, _ = manager.create("test_batch", spec, start=True)
    done = wait_terminal(manager, job["id"], timeout=120)
    assert done["status"] == "completed"
    progress = [e["data"] for e in manager.events(job["id"], limit=1000) if e["type"] == "progress"]
    rates = [p["rate"] for p in progress if p["done"] >= 3]
    # two workers of 0.3 s tests: ~6.7 tests/s at best, less on a loaded machine
    assert rates and max(rates) < 12, rates
    # the ETA of what is left is about its time (at ~6.7/s, 0.15 s a test), never ~0
    for p in progress:
        if 3 <= p["done"] < 16:
            assert p["eta_s"] >= (16 - p["done"]) * 0.08, progress


def test_stop_with_xdist_ends_cancelled_with_the_results_so_far(make_manager, tmp_path) -> None:
    manager = make_manager(PATIENT)
    spec, marks = suite(tmp_path, count=30, seconds=0.3)
    spec["args"] = ["-q", "-n", "2"]
    job, _ = manager.create("test_batch", spec, start=True)
    wait_for(lambda: manager.get(job["id"])["counts"]["completed"] >= 2, 120, "some results")
    manager.stop(job["id"])
    done = wait_terminal(manager, job["id"], timeout=60)
    assert done["status"] == "cancelled"
    rows = results(manager, job["id"])
    assert 2 <= len(rows) < 30 and done["counts"]["completed"] == len(rows)
    assert len(started(marks)) < 30  # the workers stopped with the tests they had in hand
    data = summary(manager, job["id"])
    assert data["stopped"] is True and data["exit_code"] == done["exit_code"] == 2
    lines = log_lines(manager, job["id"])
    assert not [line for line in lines if line.startswith("[STOP] signal")], lines
