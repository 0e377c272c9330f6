"""The job engine end to end: real supervisors, workers and databases (SQLite, PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import (
    DEMO_TARGET,
    SEED,
    SQLITE_ONLY,
    TESTS_DIR,
    forge_row,
    log_lines,
    wait_for,
    wait_status,
    wait_terminal,
)
from jupyter_jobctl.core.errors import Conflict, JobNotFound
from jupyter_jobctl.manager import JobManager, StopPolicy
from jupyter_jobctl.procs.processes import job_processes
from tests import jobs

DEMO = DEMO_TARGET


def training(target: str, **config) -> dict:
    return {"target": f"jobs:{target}", "config": config, "cwd": str(TESTS_DIR)}


def test_seed_scenario(manager: JobManager) -> None:
    job, created = manager.create("training", {"target": DEMO, "config": SEED})
    assert created and job["status"] == "pending"
    assert job["spec"]["config"]["optimizer"] == "adam"

    manager.start(job["id"])
    wait_status(manager, job["id"], "running")
    wait_for(
        lambda: any("epoch 1/5" in line for line in log_lines(manager, job["id"])),
        what="the first epoch's log line",
    )
    running = manager.get(job["id"])
    assert running["progress"]["unit"] == "epoch" and running["progress"]["total"] == 5
    assert {"loss", "accuracy"} <= set(running["metrics"])

    stopped = manager.stop(job["id"])
    assert stopped["status"] == "stopping"
    done = wait_terminal(manager, job["id"])
    assert done["status"] == "cancelled"
    lines = log_lines(manager, job["id"])
    assert "[STOP] Stop request received" in lines
    assert "[STOP] Cancellation flag set" in lines
    assert any(line.startswith("[CANCELLATION]") for line in lines)

    statuses = [e["data"]["status"] for e in manager.events(job["id"]) if e["type"] == "status"]
    assert statuses == ["pending", "initializing", "running", "stopping", "cancelled"]

    with pytest.raises(Conflict, match="already cancelled") as err:
        manager.stop(job["id"])
    assert err.value.status == "cancelled"
    with pytest.raises(JobNotFound):
        manager.stop("0" * 32)


def test_completed_job_cannot_be_stopped(manager: JobManager) -> None:
    job, _ = manager.create("training", training("quick"), start=True)
    done = wait_terminal(manager, job["id"])
    assert done["status"] == "completed" and done["exit_code"] == 0
    lines = log_lines(manager, job["id"])
    assert "quick job done" in lines
    assert "printed to stdout" in lines and "printed to stderr" in lines
    streams = {
        e["data"]["line"]: e["data"]["stream"]
        for e in manager.events(job["id"])
        if e["type"] == "log"
    }
    assert streams["printed to stderr"] == "stderr"
    with pytest.raises(Conflict, match="completed"):
        manager.stop(job["id"])


def test_failures_are_reported(manager: JobManager) -> None:
    crashed, _ = manager.create("training", training("crash"), start=True)
    code, _ = manager.create("training", training("quick", code=3), start=True)
    missing, _ = manager.create("command", {"argv": ["/no/such/program"]}, start=True)
    crashed = wait_terminal(manager, crashed["id"])
    assert crashed["status"] == "failed" and "ValueError: boom from the job" in crashed["reason"]
    assert any("Traceback" in line for line in log_lines(manager, crashed["id"]))
    code = wait_terminal(manager, code["id"])
    assert code["status"] == "failed" and code["exit_code"] == 3
    missing = wait_terminal(manager, missing["id"])
    assert missing["status"] == "failed" and "/no/such/program" in missing["reason"]


def test_cooperative_stop_unwinds_cleanly(make_manager, tmp_path: Path) -> None:
    # a ladder slow enough that only the cooperative rung can explain a stop, even under load
    manager = make_manager(
        StopPolicy(interrupt_after=5, stop_grace=10, kill_grace=2, heartbeat_interval=0.3)
    )
    marker = tmp_path / "finally"
    job, _ = manager.create(
        "training", training("cooperative", finally_file=str(marker)), start=True
    )
    wait_status(manager, job["id"], "running")
    wait_for(lambda: manager.get(job["id"])["progress"]["done"], what="progress")
    t0 = time.monotonic()
    manager.stop(job["id"])
    done = wait_terminal(manager, job["id"])
    elapsed = time.monotonic() - t0
    assert done["status"] == "cancelled"
    assert marker.read_text() == "unwound"
    assert elapsed < manager.policy.interrupt_after  # no signal was needed
    lines = log_lines(manager, job["id"])
    assert any(line.startswith("[CANCELLATION] stopped at checkpoint step") for line in lines)
    assert not any(line.startswith("[STOP] signal") for line in lines)


@SQLITE_ONLY
def test_sleeping_job_is_interrupted_by_sigint(make_manager, tmp_path: Path) -> None:
    # SIGTERM far away, so only SIGINT can explain the stop, even on a loaded machine
    manager = make_manager(
        StopPolicy(interrupt_after=0.3, stop_grace=8, kill_grace=2, heartbeat_interval=0.3)
    )
    marker = tmp_path / "finally"
    job, _ = manager.create("training", training("sleeper", finally_file=str(marker)), start=True)
    wait_status(manager, job["id"], "running")
    manager.stop(job["id"])
    done = wait_terminal(manager, job["id"], timeout=10)
    assert done["status"] == "cancelled"
    assert marker.read_text() == "unwound"  # KeyboardInterrupt ran the finally block
    lines = log_lines(manager, job["id"])
    assert any(line.startswith("[STOP] signal SIGINT") for line in lines)
    assert "[CANCELLATION] interrupted by SIGINT" in lines
    assert not any("SIGKILL" in line for line in lines)


@SQLITE_ONLY
def test_stubborn_command_is_killed_with_its_children(manager: JobManager, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    argv = [sys.executable, str(TESTS_DIR / "jobs.py"), "stubborn", str(pid_file)]
    job, _ = manager.create("command", {"argv": argv}, start=True)
    wait_status(manager, job["id"], "running")
    wait_for(lambda: jobs.READY in log_lines(manager, job["id"]), what="child started")
    worker_pid, child_pid = map(int, pid_file.read_text().split())
    manager.stop(job["id"])
    done = wait_terminal(manager, job["id"], timeout=15)
    assert done["status"] == "cancelled"
    assert done["signal"] == "SIGKILL"
    lines = log_lines(manager, job["id"])
    rungs = [line for line in lines if line.startswith("[STOP] signal")]
    assert [r.split()[2] for r in rungs] == ["SIGINT", "SIGCONT+SIGTERM", "SIGCONT+SIGKILL"]
    for pid in (worker_pid, child_pid):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert job_processes(job["id"]) == []


def test_stop_50ms_after_start_wins(manager: JobManager) -> None:
    ids = []
    for _ in range(3):
        job, _ = manager.create("training", {"target": DEMO, "config": SEED}, start=True)
        time.sleep(0.05)
        manager.stop(job["id"])
        ids.append(job["id"])
    for job_id in ids:
        assert wait_terminal(manager, job_id)["status"] == "cancelled"
        assert job_processes(job_id) == []


def test_stop_pending_job_cancels_at_once(manager: JobManager) -> None:
    job, _ = manager.create("command", {"argv": ["true"]})
    assert manager.stop(job["id"])["status"] == "cancelled"
    assert job_processes(job["id"]) == []
    with pytest.raises(Conflict, match="only a pending job can be started"):
        manager.start(job["id"])


def test_pause_resume_and_stop_paused_training(manager: JobManager) -> None:
    job, _ = manager.create("training", training("cooperative"), start=True)
    wait_status(manager, job["id"], "running")
    assert manager.pause(job["id"])["status"] == "paused"
    wait_for(lambda: "[PAUSE] paused at checkpoint" in log_lines(manager, job["id"]), what="pause")
    done_at_pause = manager.get(job["id"])["progress"]["done"]
    time.sleep(0.5)  # let a running loop (if it were running) advance
    assert manager.get(job["id"])["progress"]["done"] == done_at_pause
    with pytest.raises(Conflict):
        manager.pause(job["id"])
    assert manager.resume(job["id"])["status"] == "running"
    wait_for(
        lambda: (manager.get(job["id"])["progress"]["done"] or 0) > (done_at_pause or 0),
        what="progress after resume",
    )
    manager.pause(job["id"])
    manager.stop(job["id"])
    assert wait_terminal(manager, job["id"])["status"] == "cancelled"


@SQLITE_ONLY
def test_pause_and_stop_command_job(manager: JobManager) -> None:
    argv = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"]
    job, _ = manager.create("command", {"argv": argv}, start=True)
    wait_status(manager, job["id"], "running")
    row = manager.store.get_row(job["id"])
    wait_for(lambda: manager.store.get_row(job["id"])["worker_pid"], what="worker pid")
    manager.pause(job["id"])
    pid = manager.store.get_row(job["id"])["worker_pid"]
    wait_for(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, what="SIGSTOP")
    manager.resume(job["id"])
    wait_for(lambda: psutil.Process(pid).status() != psutil.STATUS_STOPPED, what="SIGCONT")
    manager.pause(job["id"])
    wait_for(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, what="SIGSTOP again")
    manager.stop(job["id"])
    done = wait_terminal(manager, job["id"])
    assert done["status"] == "cancelled" and row["kind"] == "command"


@SQLITE_ONLY
def test_worker_killed_fails_naming_the_signal(manager: JobManager) -> None:
    job, _ = manager.create("training", training("cooperative"), start=True)
    wait_status(manager, job["id"], "running")
    pid = wait_for(lambda: manager.store.get_row(job["id"])["worker_pid"], what="worker pid")
    os.kill(pid, signal.SIGKILL)
    done = wait_terminal(manager, job["id"], timeout=5)
    assert done["status"] == "failed"
    assert done["signal"] == "SIGKILL" and "SIGKILL" in done["reason"]


def test_supervisor_and_worker_killed_become_lost(manager: JobManager) -> None:
    job, _ = manager.create("training", training("cooperative"), start=True)
    wait_status(manager, job["id"], "running")
    row = wait_for(
        lambda: (r := manager.store.get_row(job["id"]))["worker_pid"] and r, what="identities"
    )
    os.kill(row["supervisor_pid"], signal.SIGKILL)
    os.kill(row["worker_pid"], signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(row["worker_pid"]), what="worker gone")
    # until the heartbeat is stale the job is given the benefit of the doubt
    wait_for(lambda: job["id"] in manager.reconcile()["lost"], timeout=10, what="lost")
    done = manager.get(job["id"])
    assert done["status"] == "lost" and "gone" in done["reason"]
    assert manager.reconcile()["lost"] == []  # terminal: never changes again


def test_manager_recreated_readopts_and_stops(make_manager, db_url: str) -> None:
    first = make_manager()
    job, _ = first.create("training", training("cooperative"), start=True)
    wait_status(first, job["id"], "running")
    # the worker may report before its supervisor has recorded itself: wait for both
    wait_for(lambda: first.store.get_row(job["id"])["supervisor_pid"], what="supervisor pid")
    first.close()

    second = make_manager()
    assert job["id"] in second.reconcile()["adopted"]
    before = second.get(job["id"])["progress"]["done"] or 0
    wait_for(lambda: (second.get(job["id"])["progress"]["done"] or 0) > before, what="progress")
    second.stop(job["id"])
    assert wait_terminal(second, job["id"])["status"] == "cancelled"


def create_elsewhere(db_url: str, target: str, preamble: str = "") -> str:
    """Create and start a job from another Python process, which then exits; its id."""
    script = (
        f"{preamble}\nimport sys; from jupyter_jobctl.manager import JobManager\n"
        "m = JobManager(sys.argv[1])\n"
        f"job, _ = m.create('training', {training(target)!r}, start=True)\n"
        "print(job['id'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, db_url],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(TESTS_DIR.parent),
    )
    return out.stdout.strip().splitlines()[-1]


@SQLITE_ONLY
def test_job_survives_the_process_that_created_it(manager: JobManager, db_url: str) -> None:
    job_id = create_elsewhere(db_url, "cooperative")
    wait_status(manager, job_id, "running")
    before = manager.get(job_id)["progress"]["done"] or 0
    wait_for(lambda: (manager.get(job_id)["progress"]["done"] or 0) > before, what="progress")
    manager.stop(job_id)
    assert wait_terminal(manager, job_id)["status"] == "cancelled"


def test_reused_pid_is_never_signalled(manager: JobManager) -> None:
    """A running row whose recorded pids now belong to a stranger: no signal, ends lost."""
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        job, _ = manager.create("command", {"argv": ["true"]})
        forge_row(  # as a crashed host would leave it
            manager,
            job["id"],
            status="running",
            attempt=1,
            started_at=time.time() - 100,
            heartbeat_at=time.time() - 100,
            heartbeat_interval=0.3,
            supervisor_pid=stranger.pid,
            supervisor_start=1,
            worker_pid=stranger.pid,
            worker_start=1,
            boot_id=open("/proc/sys/kernel/random/boot_id").read().strip(),
            host=manager.store.host,
        )
        assert job["id"] in manager.reconcile()["lost"]
        assert stranger.poll() is None  # still alive: never signalled
        assert manager.get(job["id"])["status"] == "lost"
    finally:
        stranger.kill()
        stranger.wait()


@SQLITE_ONLY
def test_supervisor_killed_takes_the_worker_with_it(manager: JobManager) -> None:
    """Fate-sharing: a worker never runs unsupervised; the job then ends lost, with a reason."""
    job, _ = manager.create("training", training("cooperative"), start=True)
    wait_status(manager, job["id"], "running")
    row = wait_for(
        lambda: (r := manager.store.get_row(job["id"]))["worker_pid"] and r, what="identities"
    )
    os.kill(row["supervisor_pid"], signal.SIGKILL)
    wait_for(lambda: job_processes(job["id"]) == [], what="worker to die with its supervisor")
    wait_for(lambda: job["id"] in manager.reconcile()["lost"], timeout=10, what="lost")
    assert "gone" in manager.get(job["id"])["reason"]


def test_retention_removes_only_old_finished_jobs(manager: JobManager) -> None:
    old, _ = manager.create("command", {"argv": ["true"]})
    manager.stop(old["id"])
    live, _ = manager.create("training", training("cooperative"), start=True)
    assert manager.apply_retention(0) == 0
    assert manager.apply_retention(1) == 0  # finished seconds ago, not a day
    forge_row(manager, old["id"], finished_at=time.time() - 3 * 86400)
    assert manager.apply_retention(2) == 1
    with pytest.raises(JobNotFound):
        manager.get(old["id"])
    assert manager.get(live["id"])["status"] in ("initializing", "running")


@SQLITE_ONLY
def test_sigint_rung_works_when_the_launcher_ignores_sigint(manager: JobManager, db_url) -> None:
    """A server started with `&` ignores SIGINT; its jobs must still get the SIGINT rung."""
    ignore = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN)"
    job_id = create_elsewhere(db_url, "sleeper", preamble=ignore)
    wait_status(manager, job_id, "running")
    manager.stop(job_id)
    done = wait_terminal(manager, job_id, timeout=10)
    assert done["status"] == "cancelled"
    assert "[CANCELLATION] interrupted by SIGINT" in log_lines(manager, job_id)
    assert done.get("signal") is None  # not escalated to SIGTERM/SIGKILL


@SQLITE_ONLY
def test_script_target_with_config_cwd_and_env(manager: JobManager, tmp_path: Path) -> None:
    spec = {
        "target": str(TESTS_DIR / "script_job.py"),
        "config": {"greeting": "hello"},
        "cwd": str(tmp_path),
        "env": {"JOB_FLAVOUR": "vanilla"},
    }
    job, _ = manager.create("training", spec, start=True)
    done = wait_terminal(manager, job["id"])
    assert done["status"] == "completed", done
    assert f"script says hello from {tmp_path} with vanilla" in log_lines(manager, job["id"])
    assert done["progress"]["done"] == 3 and done["spec"]["env"] == {"JOB_FLAVOUR": "***"}
