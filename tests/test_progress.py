"""Progress as a person reads it (issue 13 §2): a rate that bursts do not inflate, no event
sent twice, and the demo trainer's progress within long epochs."""

from __future__ import annotations

import itertools
import statistics
import time
from datetime import datetime

import pytest

from conftest import DEMO_TARGET, SQLITE_ONLY, wait_for, wait_terminal
from jupyter_jobctl import runtime as jc
from jupyter_jobctl.db.store import Store
from jupyter_jobctl.manager import JobManager


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(jc.time, "monotonic", fake)
    return fake


def test_rate_of_results_in_bursts_is_the_true_rate(clock: Clock) -> None:
    """Results two at a time (pytest-xdist), a pair every 0.6 s: 3.3 tests/s, not ~1000."""
    prog = jc._Progress(40, "test")
    rates = []
    for pair in range(20):
        for k in (1, 2):
            clock.now = 1000.0 + 0.6 * (pair + 1) + 0.001 * k
            prog.done = 2 * pair + k
            rates.append(prog.sample()["rate"])
    assert all(2.5 < r < 4.5 for r in rates[3:]), rates
    sample = prog.sample()
    assert sample["rate"] == pytest.approx(2 / 0.6, rel=0.1)
    assert sample["eta_s"] == 0


def test_rate_of_steady_tests_and_eta(clock: Clock) -> None:
    prog = jc._Progress(100, "test")
    for i in range(1, 41):
        clock.now += 0.3
        prog.done = i
        data = prog.sample()
    assert data["rate"] == pytest.approx(1 / 0.3, rel=0.01)
    assert data["eta_s"] == pytest.approx(60 * 0.3, rel=0.01)


def test_rate_starts_over_when_done_goes_back(clock: Clock) -> None:
    prog = jc._Progress(10, "it")
    for i in range(1, 6):
        clock.now += 1.0
        prog.done = i
        prog.sample()
    prog.done = 0
    assert prog.sample()["rate"] is None
    clock.now += 0.5
    prog.done = 1
    assert prog.sample()["rate"] == pytest.approx(2.0)


@pytest.fixture
def attached(sqlite_url: str):
    store = Store(sqlite_url)
    store.upgrade()
    job, _ = store.create_job("training", "t", {"target": "m:f", "config": {}})
    store.start_job(
        job["id"], interrupt_after=0.5, stop_grace=3, kill_grace=2, heartbeat_interval=1
    )
    handle = jc.attach(job["id"], 1, sqlite_url, {})
    yield store, handle
    jc.detach()
    store.close()


def test_the_last_progress_event_is_sent_once(attached) -> None:
    store, job = attached
    for _ in job.progress(range(3), unit="epoch"):
        time.sleep(jc.PROGRESS_INTERVAL + 0.05)  # slow steps: every one reports
    job.flush()
    done = [e["data"]["done"] for e in store.events_after(job.id) if e["type"] == "progress"]
    assert done == [0, 1, 2, 3]


def _progress(manager: JobManager, job_id: str) -> list[tuple[float, dict]]:
    events = manager.events(job_id, limit=1000, type_="progress")
    when = [datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp() for e in events]
    return [(ts, e["data"]) for ts, e in zip(when, events)]


@SQLITE_ONLY
def test_demo_trainer_full_mode_reports_within_epochs(manager: JobManager) -> None:
    # batches of 2 (the seed scenario's): an epoch of 160 000 samples lasts half a minute
    spec = {"target": DEMO_TARGET, "config": {"mode": "full", "epochs": 2, "batch_size": 2}}
    job, _ = manager.create("training", spec, start=True)

    def within_epoch() -> list[tuple[float, dict]]:
        found = [(ts, d) for ts, d in _progress(manager, job["id"]) if 0 < d["done"] < 1]
        return found if len(found) >= 4 else []

    found = wait_for(within_epoch, 120, "progress within the first epoch")
    manager.stop(job["id"])
    assert wait_terminal(manager, job["id"])["status"] == "cancelled"
    assert all(d["unit"] == "epoch" and d["total"] == 2 for _, d in found)
    dones = [d["done"] for _, d in found]
    assert dones == sorted(set(dones))  # rising, none twice
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(found)]
    assert statistics.median(gaps) <= 1.0, gaps  # at least about once a second
    assert found[-1][1]["rate"] > 0 and found[-1][1]["eta_s"] > 0


@SQLITE_ONLY
def test_demo_trainer_progress_rises_and_ends_once(manager: JobManager) -> None:
    spec = {"target": DEMO_TARGET, "config": {"mode": "smoke_test", "epochs": 2}}
    job, _ = manager.create("training", spec, start=True)
    done = wait_terminal(manager, job["id"], timeout=120)
    assert done["status"] == "completed"
    dones = [d["done"] for _, d in _progress(manager, job["id"])]
    assert dones[0] == 0 and dones[-1] == 2 and dones == sorted(set(dones)), dones
    assert any(0 < d < 1 for d in dones), dones  # within the first epoch, too
    assert done["progress"]["done"] == 2 and done["progress"]["eta_s"] == 0
