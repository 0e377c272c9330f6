"""What a new user hit (issue 13 §5): the README's test-batch example, a warning every batch
printed, process titles nobody could read, supervisor logs left behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from conftest import (
    SQLITE_ONLY,
    TESTS_DIR,
    forge_row,
    log_lines,
    wait_for,
    wait_status,
    wait_terminal,
)
from jupyter_jobctl.manager import JobManager
from jupyter_jobctl.procs.processes import job_processes

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"  # `make run`'s root_dir: where a relative spec.cwd starts


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


@SQLITE_ONLY
def test_readme_test_batch_example_runs_as_written(make_manager) -> None:
    """The README's example (the example suite under `make run`'s root_dir), no warning."""
    manager = make_manager(base_dir=str(NOTEBOOKS))
    spec = {"args": ["example_tests"], "cwd": "."}  # as in the README
    job, _ = manager.create("test_batch", spec, name="example suite", start=True)
    done = wait_terminal(manager, job["id"], timeout=120)
    lines = log_lines(manager, job["id"])
    assert done["status"] == "completed", lines
    assert done["counts"] == {"total": 12, "completed": 12, "passed": 10, "failed": 2, "skipped": 0}
    # pytest imports the plugin itself (``-p``): nothing was imported before its rewriting
    assert not any("PytestAssertRewriteWarning" in line for line in lines), lines
    assert not any("warning" in line for line in lines if " in " in line), lines  # "N warnings"


@SQLITE_ONLY
def test_processes_have_titles_and_keep_their_marker(manager: JobManager) -> None:
    manager.warm()
    launcher = manager.executor.launcher_pid()
    assert launcher is not None and cmdline(launcher) == "jobctl launcher"
    spec = {"target": "jobs:cooperative", "config": {}, "cwd": str(TESTS_DIR)}
    job, _ = manager.create("training", spec, name="titles", start=True)
    wait_status(manager, job["id"], "running")
    row = wait_for(lambda: (r := manager.store.get_row(job["id"]))["worker_pid"] and r, 30, "pids")
    assert cmdline(row["supervisor_pid"]) == f"jobctl supervisor {job['id']} titles"
    assert cmdline(row["worker_pid"]) == f"jobctl worker {job['id']} titles"
    # the title leaves /proc/PID/environ alone: the job's processes are still found by it
    assert row["worker_pid"] in {p.pid for p in job_processes(job["id"])}
    manager.stop(job["id"])
    assert wait_terminal(manager, job["id"])["status"] == "cancelled"

    # a supervisor started as a fresh Python (no launcher), and a name too long for the line
    os.kill(launcher, signal.SIGKILL)
    wait_for(lambda: manager.executor.launcher_pid() is None, 30, "the launcher to die")
    name = "a long name " * 16  # 192 characters
    job, _ = manager.create("training", spec, name=name, start=True)
    wait_status(manager, job["id"], "running")
    row = wait_for(lambda: (r := manager.store.get_row(job["id"]))["worker_pid"] and r, 30, "pids")
    sup, worker = cmdline(row["supervisor_pid"]), cmdline(row["worker_pid"])
    assert sup.startswith(f"jobctl supervisor {job['id']} a long name")
    assert worker.startswith(f"jobctl worker {job['id']} a long name")
    assert row["worker_pid"] in {p.pid for p in job_processes(job["id"])}
    manager.stop(job["id"])
    assert wait_terminal(manager, job["id"])["status"] == "cancelled"


@SQLITE_ONLY
def test_a_supervisor_that_outlives_its_launcher_leaves_no_empty_log(
    manager: JobManager,
) -> None:
    manager.warm()
    launcher = manager.executor.launcher_pid()
    assert launcher is not None
    spec = {"target": "jobs:cooperative", "config": {}, "cwd": str(TESTS_DIR)}
    job, _ = manager.create("training", spec, start=True)
    wait_status(manager, job["id"], "running")
    log = manager.store.log_dir() / f"supervisor-{job['id']}.1.log"
    assert log.exists() and log.stat().st_size == 0  # the launcher opened it for the supervisor
    os.kill(launcher, signal.SIGKILL)  # the reaper that would drop an empty log is gone
    wait_for(lambda: manager.executor.launcher_pid() is None, 30, "the launcher to die")
    manager.stop(job["id"])
    assert wait_terminal(manager, job["id"])["status"] == "cancelled"
    wait_for(lambda: not job_processes(job["id"]), 30, "the job's processes to end")
    assert not log.exists()


@SQLITE_ONLY
def test_supervisor_logs_go_with_deleted_and_expired_jobs(manager: JobManager) -> None:
    spec = {"target": "jobs:quick", "config": {}, "cwd": str(TESTS_DIR)}
    ids = []
    for _ in range(3):
        job, _ = manager.create("training", spec, start=True)
        assert wait_terminal(manager, job["id"])["status"] == "completed"
        ids.append(job["id"])
    log_dir = manager.store.log_dir()
    # what stays behind: a supervisor that had something to say (or outlived its launcher)
    logs = {job_id: log_dir / f"supervisor-{job_id}.1.log" for job_id in ids}
    for path in logs.values():
        path.write_text("diagnostics\n")
    deleted, expired, kept = ids

    manager.delete(deleted)
    assert not logs[deleted].exists()
    assert logs[expired].exists() and logs[kept].exists()

    forge_row(manager, expired, finished_at=time.time() - 3 * 86400)
    assert manager.apply_retention(2) == 1
    assert not logs[expired].exists()
    assert logs[kept].exists()  # finished seconds ago: kept, with its log
