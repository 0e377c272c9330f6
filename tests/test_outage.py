"""A database outage kills no job: real PostgreSQL restarted under running jobs, a SQLite file
locked by another process for 20 s, a disk that fills up (a small tmpfs).

Each test runs a training job (``job.log`` through the runtime's store, every other line
printed through the supervisor's pipes) and a command job (stdout only), checks that they
keep running through the outage and end ``completed`` with every line stored exactly once
and seqs gapless, and prints ``OUTAGE-REPORT`` lines: events written vs stored.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from conftest import FAST_POLICY, TESTS_DIR, RealServer, end_all_jobs, wait_for
from jupyter_jobctl.core.errors import DatabaseUnavailable
from jupyter_jobctl.manager import JobManager
from tests.harness import PostgresCluster, pg_bin

N_TRAIN = 600  # counter lines of the training job
N_COMMAND = 400


def _command(n: int, pause: float) -> dict:
    code = (
        f"import time\nfor i in range({n}):\n    print('cmd', i, flush=True)\n"
        f"    time.sleep({pause})"
    )
    return {"argv": [sys.executable, "-c", code]}


def _training(n: int, pause: float) -> dict:
    return {
        "target": "hostile_jobs:counter",
        "config": {"count": n, "sleep": pause, "print": True, "metric_every": 10},
        "cwd": str(TESTS_DIR),
    }


def _all_events(m: JobManager, job_id: str) -> list[dict]:
    out, after = [], 0
    while page := m.events(job_id, after=after, limit=1000):
        out += page
        after = page[-1]["seq"]
    return out


def _check_job(m: JobManager, job_id: str, name: str, prefix: str, n: int, *, metrics: int) -> dict:
    """The job completed, every numbered line is stored once, seqs are gapless; a report."""
    job = m.get(job_id)
    assert job["status"] == "completed", job
    assert "reason" not in job, job
    evs = _all_events(m, job_id)
    seqs = [e["seq"] for e in evs]
    assert seqs == list(range(1, job["last_seq"] + 1)), "seqs have gaps or repeats"
    lines = [e["data"]["line"] for e in evs if e["type"] == "log"]
    numbered = [x for x in lines if x.startswith(prefix + " ")]
    assert sorted(numbered, key=lambda x: int(x.split()[1])) == [f"{prefix} {i}" for i in range(n)]
    assert len(set(numbered)) == len(numbered) == n, "a line is missing or stored twice"
    stored_metrics = sum(1 for e in evs if e["type"] == "metric")
    assert stored_metrics == metrics
    report = {
        "job": name,
        "lines_written": n,
        "lines_stored": len(numbered),
        "metrics_written": metrics,
        "metrics_stored": stored_metrics,
        "events_stored": len(evs),
        "last_seq": job["last_seq"],
        "gapless": True,
        "status": job["status"],
        "outage_notes": [x for x in lines if "job database" in x][:6],
    }
    _report(report)
    return report


def _report(entry: dict) -> None:
    """Printed, and appended to a file the closing note quotes (pytest may capture stdout)."""
    line = json.dumps(entry)
    print("OUTAGE-REPORT", line)
    with open(Path(tempfile.gettempdir()) / "jobctl-outage-report.jsonl", "a") as fh:
        fh.write(line + "\n")


def _supervisor(m: JobManager, job_id: str) -> psutil.Process:
    row = m.store.get_row(job_id)
    assert row["supervisor_pid"], row
    return psutil.Process(row["supervisor_pid"])


def _start_pair(m: JobManager, n_train: int, n_command: int, pause: float) -> tuple[str, str]:
    train, _ = m.create("training", _training(n_train, pause), "counter", start=True)
    command, _ = m.create("command", _command(n_command, pause * 1.5), "cmd", start=True)
    for job_id in (train["id"], command["id"]):
        wait_for(lambda j=job_id: m.get(j)["status"] == "running", 60, f"{job_id} running")
        wait_for(lambda j=job_id: m.get(j)["last_seq"] > 20, 60, f"{job_id} writing")
    return train["id"], command["id"]


def _wait_done(m: JobManager, *job_ids: str, timeout: float = 120) -> None:
    for job_id in job_ids:
        wait_for(
            lambda j=job_id: m.get(j)["status"] in ("completed", "failed", "cancelled", "lost"),
            timeout,
            f"{job_id} to end",
        )


# ---------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    """A cluster of this test alone: it is restarted under the jobs."""
    bin_dir = pg_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; `make test` installs Debian postgresql.")
        pytest.skip("PostgreSQL is not installed (run `make test`)")
    with PostgresCluster(bin_dir, max_connections=100) as cluster:
        yield cluster


def _pg_ctl(cluster: PostgresCluster, *args: str) -> None:
    opts = (
        f"-p {cluster.port} -k {cluster.data} -c listen_addresses=127.0.0.1 -c fsync=off "
        f"-c max_connections={cluster.max_connections}"
    )
    ctl = f"{cluster.bin_dir}/pg_ctl"
    if args[0] == "start":
        run = cluster._run(
            ctl, "-D", cluster.data, "-w", "-l", f"{cluster.data}/log", "-o", opts, "start"
        )
    else:
        run = cluster._run(ctl, "-D", cluster.data, "-w", *args)
    assert run.returncode == 0, run.stderr


def test_postgresql_restart_under_running_jobs(
    own_postgres: PostgresCluster, tmp_path: Path
) -> None:
    db_url = own_postgres.create_database("outage")
    m = JobManager(db_url, policy=FAST_POLICY)
    server = None
    try:
        server = RealServer(tmp_path / "srv", db_url)
        train, command = _start_pair(m, N_TRAIN, N_COMMAND, 0.012)
        supervisors = [_supervisor(m, j) for j in (train, command)]
        _pg_ctl(own_postgres, "-m", "fast", "stop")  # every connection is cut
        down = time.monotonic()
        # while it is down: the API answers 503 with a sentence, /health says degraded
        status, body = server.request("GET", "/jobs")
        assert status == 503, body
        assert "cannot be reached" in body["error"] and "sqlalche" not in body["error"]
        assert "SELECT" not in body["error"]
        status, health = server.request("GET", "/health")
        assert status == 200 and health["status"] == "degraded", health
        with pytest.raises(DatabaseUnavailable):
            m.get(train)
        while time.monotonic() - down < 5.0:
            assert all(p.is_running() and p.status() != "zombie" for p in supervisors)
            time.sleep(0.25)
        _pg_ctl(own_postgres, "start")
        wait_for(lambda: server.request("GET", "/health")[1]["status"] == "ok", 30, "health ok")
        _wait_done(m, train, command)
        _check_job(
            m,
            train,
            "training (postgresql restart, 5 s down)",
            "count",
            N_TRAIN,
            metrics=N_TRAIN // 10,
        )
        _check_job(
            m, command, "command (postgresql restart, 5 s down)", "cmd", N_COMMAND, metrics=0
        )
        lines = [e["data"]["line"] for e in _all_events(m, train) if e["type"] == "log"]
        assert any("could not be written for" in x for x in lines)  # the outage is in the log
        # messages are rate-limited: a few per outage, not 40 a second
        noisy = [x for x in lines if x.startswith("[jobctl] job runtime:")]
        assert len(noisy) <= 4, noisy
    finally:
        if server is not None:
            server.kill()
        with contextlib.suppress(Exception):
            end_all_jobs(m)
        m.close()


# ---------------------------------------------------------------------------- SQLite lock

LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
print("released", flush=True)
"""


def test_sqlite_locked_by_another_process_for_20_s(tmp_path: Path) -> None:
    db = tmp_path / "jobctl.db"
    m = JobManager(f"sqlite:///{db}", policy=FAST_POLICY)
    try:
        n_train, n_command = 2500, 1500  # ~30 s: they outlive the lock
        train, command = _start_pair(m, n_train, n_command, 0.01)
        supervisors = [_supervisor(m, j) for j in (train, command)]
        locker = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(db), "20"], stdout=subprocess.PIPE, text=True
        )
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        time.sleep(1.5)
        health = m.health()  # the write probe waits 1 s, not 15
        assert health["status"] == "degraded" and health["db"] == "locked", health
        assert time.monotonic() - t0 < 6
        # readers still work (WAL): the reconciler sees live supervisors and adopts them
        while locker.poll() is None:
            outcome = m.reconcile()
            assert not outcome["lost"] and not outcome["failed"], outcome
            assert all(p.is_running() and p.status() != "zombie" for p in supervisors)
            time.sleep(1.0)
        assert locker.stdout.readline().strip() == "released"
        wait_for(lambda: m.health()["status"] == "ok", 30, "health ok")
        _wait_done(m, train, command, timeout=180)
        _check_job(
            m, train, "training (sqlite locked 20 s)", "count", n_train, metrics=n_train // 10
        )
        _check_job(m, command, "command (sqlite locked 20 s)", "cmd", n_command, metrics=0)
        lines = [e["data"]["line"] for e in _all_events(m, train) if e["type"] == "log"]
        noisy = [x for x in lines if x.startswith("[jobctl] job runtime:")]
        assert 1 <= len(noisy) <= 6, noisy  # said, and not 40 times a second
        assert all("locked" in x or "back after" in x for x in noisy), noisy
        log_dir = m.store.log_dir()
        said = "".join(p.read_text() for p in log_dir.glob("supervisor-*.log"))
        assert said.count("unavailable") <= 12, said[-3000:]
    finally:
        with contextlib.suppress(Exception):
            end_all_jobs(m)
        m.close()


# ---------------------------------------------------------------------------- disk full


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """An 8 MiB tmpfs mounted for this test (root only); unmounted at the end."""
    where = Path(tempfile.mkdtemp(prefix="jobctl-full-"))
    run = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root): {run.stderr.strip()}")
    try:
        yield where
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)  # a job process may still hold a file there
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
        shutil.rmtree(where, ignore_errors=True)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1 << 9):
            try:
                while True:
                    os.write(fd, b"\1" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def test_a_disk_that_fills_up(small_disk: Path, tmp_path: Path) -> None:
    db = small_disk / "jobctl.db"
    db_url = f"sqlite:///{db}"
    m = JobManager(db_url, policy=FAST_POLICY)
    servers: list[RealServer] = []
    try:
        servers.append(RealServer(tmp_path / "srv", db_url))
        n_train, n_command = 2000, 1200
        train, command = _start_pair(m, n_train, n_command, 0.01)
        supervisors = [_supervisor(m, j) for j in (train, command)]
        filler = _fill(small_disk)
        full_at = time.monotonic()
        # /health names the disk at once (free space), and writes fail with a sentence
        health = wait_for(lambda: (h := m.health())["status"] == "degraded" and h, 10, "degraded")
        assert health["db"] == "disk full" and str(small_disk) in health["reason"], health

        def refused() -> dict | None:
            status, body = servers[0].request(
                "POST", "/jobs", {"kind": "command", "spec": {"argv": ["true"]}}
            )
            assert status in (201, 503), (status, body)
            return body if status == 503 else None

        body = wait_for(refused, 30, "a create refused for the full disk")
        assert "disk holding the job database is full" in body["error"], body
        assert str(small_disk) in body["error"]
        assert "sqlalche" not in body["error"] and "INSERT" not in body["error"]
        # a server started while the disk is full loads, and says degraded
        servers[0].kill()
        servers.append(RealServer(tmp_path / "srv2", db_url))
        status, health = servers[1].request("GET", "/health")
        assert status == 200 and health["status"] == "degraded" and health["db"] == "disk full"
        status, page = servers[1].request("GET", "/jobs")
        assert status == 200 and {
            j["status"] for j in page["jobs"] if j["id"] in (train, command)
        } <= {
            "running",
            "completed",
        }
        while time.monotonic() - full_at < 6:  # the supervisors ride it out
            assert all(p.is_running() and p.status() != "zombie" for p in supervisors)
            time.sleep(0.25)
        filler.unlink()  # space returns
        wait_for(lambda: m.health()["status"] == "ok", 30, "health ok")
        _wait_done(m, train, command, timeout=180)
        _check_job(m, train, "training (disk full 6 s)", "count", n_train, metrics=n_train // 10)
        _check_job(m, command, "command (disk full 6 s)", "cmd", n_command, metrics=0)
        lines = [e["data"]["line"] for e in _all_events(m, train) if e["type"] == "log"]
        assert any("could not be written for" in x and "full" in x for x in lines), [
            x for x in lines if "jobctl" in x
        ]
        status, health = servers[1].request("GET", "/health")
        assert health["status"] == "ok", health
    finally:
        for server in servers:
            server.kill()
        with contextlib.suppress(Exception):
            end_all_jobs(m)
        m.close()
    with sqlite3.connect(db) as conn:  # nothing corrupt after space returned
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    _report({"job": "disk full", "integrity_check": "ok"})


def test_database_errors_are_sentences(tmp_path: Path) -> None:
    """A driver error reaches a person as one sentence: no SQL, no documentation URL."""
    from sqlalchemy.exc import OperationalError

    m = JobManager(f"sqlite:///{tmp_path / 'empty.db'}", migrate=False)  # no tables
    try:
        with pytest.raises(DatabaseUnavailable) as err:
            m.get("0" * 32)
        text = str(err.value)
        assert isinstance(err.value.__cause__, OperationalError)
        assert "[SQL" in str(err.value.__cause__) and "sqlalche.me" in str(err.value.__cause__)
        assert "SELECT" not in text and "sqlalche" not in text and "\n" not in text, text
        assert text.startswith("The job database") and text.endswith("."), text
        assert "no such table" in text
        health = m.health()  # the schema is missing: degraded, with the sentence
        assert health["status"] == "degraded"
    finally:
        m.close()
