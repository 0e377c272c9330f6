"""What a Dask worker runs for one job attempt: the job's usual supervisor, as its child.

The Dask executor (:mod:`jupyter_jobctl.engine.executors.dask`) submits :func:`run_attempt`
with ``fire_and_forget``: the task lives on the scheduler, not in the Jupyter server, so a
job keeps running when the server (and its Dask client) goes away. The task starts
``python -m jupyter_jobctl.procs.supervisor`` on the Dask worker's machine, exactly as the
local executor does on the server's: it claims the attempt in the shared database, runs
the worker, heartbeats, watches the stop flag, runs the stop ladder and records the end.

The supervisor dies with the Dask worker (parent-death signal; the task's thread waits for
it, so that thread lives as long as the job): a worker that dies takes its job with it,
and the job's stale heartbeat tells every server it is lost. Dask reschedules a task whose
worker died; the second run finds the attempt claimed and returns without running it.

Imported on Dask workers and scheduler: nothing here imports Dask or the server side.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from jupyter_jobctl.procs import processes

LOG_TAIL = 4000  # characters of the supervisor's own diagnostics returned as the result


def log_path(job_id: str, attempt: int) -> Path:
    """Where the supervisor's own diagnostics go on the Dask worker's machine."""
    folder = Path(tempfile.gettempdir()) / f"jobctl-logs-{os.getuid()}"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / f"supervisor-{job_id}.{attempt}.log"


def run_attempt(job_id: str, attempt: int, db_url: str, env: dict[str, str]) -> dict[str, Any]:
    """Supervise one attempt of the job on this Dask worker; returns when the job ended
    (or, for an attempt another run of this task claimed first, at once)."""
    child_env = {k: v for k, v in os.environ.items() if k != processes.JOB_ENV}
    child_env.update(env)
    child_env["JOBCTL_DB_URL"] = db_url
    argv = [sys.executable, "-m", "jupyter_jobctl.procs.supervisor", job_id, str(attempt)]
    path = log_path(job_id, attempt)
    with open(path, "ab") as sink:
        child = processes.spawn(
            argv,
            env=child_env,
            new_session=True,  # the job's signals never reach the Dask worker
            die_with_parent=True,  # a Dask worker that dies takes its job along
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    code = child.wait()
    try:
        said = path.read_text(errors="replace")[-LOG_TAIL:]
        if not said:
            path.unlink()
    except OSError:
        said = ""
    return {
        "job_id": job_id,
        "attempt": attempt,
        "host": socket.gethostname(),
        "exit": code,
        "log": said,
    }


def task_states(keys: list[str], dask_scheduler: Any = None) -> dict[str, dict[str, Any] | None]:
    """Run on the scheduler (``Client.run_on_scheduler``): what it knows of each task."""
    found: dict[str, dict[str, Any] | None] = {}
    for key in keys:
        task = dask_scheduler.tasks.get(key) if dask_scheduler is not None else None
        if task is None:
            found[key] = None
            continue
        processing = getattr(task, "processing_on", None)
        found[key] = {
            "state": task.state,
            "resources": dict(task.resource_restrictions or {}),
            "workers": sorted(task.worker_restrictions or ()),
            "on": getattr(processing, "address", None),
            "error": str(getattr(task, "exception_text", "") or "")[-500:],
            "workers_total": len(dask_scheduler.workers),
        }
    return found
