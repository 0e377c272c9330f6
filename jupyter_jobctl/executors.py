"""Executors launch a job attempt somewhere and answer whether its processes still live.

``LocalExecutor`` starts one supervisor process per attempt in its own session on this
machine. The supervisor owns the worker; the executor only launches, checks and, when a
supervisor has vanished, cleans up what it left.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, Protocol

from . import processes
from .processes import Identity


class Executor(Protocol):
    def launch(
        self, job_id: str, attempt: int, db_url: str, kind: str | None = None, spec: Any = None
    ) -> None: ...

    def is_alive(self, row: dict[str, Any]) -> bool | None: ...

    def clean_up(self, row: dict[str, Any]) -> int: ...

    def reap(self) -> None: ...


class LocalExecutor:
    """Supervisors as detached local processes (``setsid``), surviving the server."""

    def __init__(self, log_dir: str | os.PathLike[str] | None = None) -> None:
        self.log_dir = Path(log_dir) if log_dir else None
        # supervisors we started, with their log file, until reaped
        self._children: list[tuple[subprocess.Popen[bytes], Path | None]] = []
        self._lock = threading.Lock()

    def launch(
        self, job_id: str, attempt: int, db_url: str, kind: str | None = None, spec: Any = None
    ) -> None:
        self.reap()
        env = {k: v for k, v in os.environ.items() if k != processes.JOB_ENV}
        env["JOBCTL_DB_URL"] = db_url
        if kind is not None:
            plan = json.dumps({"kind": kind, "spec": spec})
            if len(plan) < 100_000:  # env strings are capped by the kernel; else read from the DB
                env["JOBCTL_LAUNCH"] = plan
        argv = [sys.executable, "-m", "jupyter_jobctl.supervisor", job_id, str(attempt)]
        log = self._open_log(job_id, attempt)
        try:
            sink = log if log is not None else subprocess.DEVNULL
            child = processes.spawn(argv, env=env, new_session=True, stdout=sink, stderr=sink)
        finally:
            if log is not None:
                log.close()
        with self._lock:
            self._children.append((child, Path(log.name) if log is not None else None))

    def _open_log(self, job_id: str, attempt: int) -> IO[bytes] | None:
        """The supervisor's diagnostics file, or None: a missing log never stops a job."""
        if self.log_dir is None:
            return None
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            return open(self.log_dir / f"supervisor-{job_id}.{attempt}.log", "ab")
        except OSError:
            return None

    def reap(self) -> None:
        """Collect exit statuses of supervisors we started, so none linger as zombies."""
        # the server's database threads start jobs concurrently: one reaper at a time
        with self._lock:
            running = []
            for child, log in self._children:
                if child.poll() is None:
                    running.append((child, log))
                elif log is not None:
                    with contextlib.suppress(OSError):  # keep only logs with something in them
                        if log.stat().st_size == 0:
                            log.unlink()
            self._children = running

    def is_alive(self, row: dict[str, Any]) -> bool | None:
        """True/False for this machine's supervisors; None when the job ran on another host."""
        if row.get("host") and row["host"] != _hostname():
            return None
        if row.get("supervisor_pid") is None:
            return False
        ident = Identity(row["supervisor_pid"], row["supervisor_start"], row["boot_id"] or "")
        return ident.alive()

    def worker_alive(self, row: dict[str, Any]) -> bool:
        if row.get("worker_pid") is None:
            return False
        return Identity(row["worker_pid"], row["worker_start"], row["boot_id"] or "").alive()

    def clean_up(self, row: dict[str, Any]) -> int:
        """Kill whatever the job left behind once its supervisor is gone; returns the count."""
        return processes.kill_job_processes(row["id"])

    def pending_children(self) -> int:
        self.reap()
        return len(self._children)


def _hostname() -> str:
    import socket

    return socket.gethostname()
