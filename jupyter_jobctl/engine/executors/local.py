"""Executors launch a job attempt somewhere and answer whether its processes still live.

``LocalExecutor`` starts one supervisor process per attempt in its own session on this
machine, forked by a warm launcher (``jupyter_jobctl.procs.launcher``) when it can, else as a fresh
Python. The supervisor owns the worker; the executor only launches, checks and, when a
supervisor has vanished, cleans up what it left.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, cast

from jupyter_jobctl.core.states import JobKind
from jupyter_jobctl.engine.executors.base import Executor, Row
from jupyter_jobctl.procs import handshake, processes
from jupyter_jobctl.procs.processes import Identity

log = logging.getLogger("jupyter_jobctl")

LAUNCHER_START_TIMEOUT = 30.0  # seconds for the launcher's imports (a loaded machine is slow)
LAUNCHER_REPLY_TIMEOUT = 10.0  # seconds for one fork
LAUNCHER_RETRY_AFTER = 60.0  # after a launcher failure, fresh Pythons for this long


class _Launcher:
    """The pipe to one warm launcher process; the executor serialises requests."""

    def __init__(self, db_url: str, stderr: IO[bytes] | None) -> None:
        self.db_url = db_url
        self.proc = processes.spawn(
            [sys.executable, "-m", "jupyter_jobctl.procs.launcher", db_url],
            env=_server_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr if stderr is not None else subprocess.DEVNULL,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        self._buffer = b""
        try:
            ready = self._reply(LAUNCHER_START_TIMEOUT)
            if "ready" not in ready:
                raise OSError(f"unexpected first line from the launcher: {ready!r}")
        except BaseException:
            self.close()
            raise

    def alive(self) -> bool:
        return self.proc.poll() is None

    def fork(self, request: dict[str, Any]) -> int:
        os.write(self._in, json.dumps(request).encode() + b"\n")
        reply = self._reply(LAUNCHER_REPLY_TIMEOUT)
        if "pid" not in reply:
            raise OSError(reply.get("error") or f"unexpected reply {reply!r}")
        return int(reply["pid"])

    def _reply(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the launcher did not answer in time")
            if select.select([self._out], [], [], left)[0]:
                chunk = os.read(self._out, 1 << 16)
                if not chunk:
                    raise EOFError("the launcher exited")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return dict(json.loads(line))

    def close(self) -> None:
        """End of stdin ends the launcher; the supervisors it forked are not touched."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class LocalExecutor(Executor):
    """Supervisors as detached local processes (``setsid``), surviving the server."""

    name = "local"

    def __init__(self, log_dir: str | os.PathLike[str] | None = None, job_nice: int = 0) -> None:
        self.log_dir = Path(log_dir) if log_dir else None
        self.job_nice = job_nice  # added to workers' niceness: jobs yield the CPU to the server
        # supervisors started as fresh Pythons, with their log file, until reaped
        self._children: list[tuple[subprocess.Popen[bytes], Path | None]] = []
        # supervisors the launcher forked (its children: it reaps them)
        self._forked: list[Identity] = []
        self._lock = threading.Lock()
        self._launch_lock = threading.Lock()  # one request to the launcher at a time
        self._launcher: _Launcher | None = None
        self._launcher_failed_at = float("-inf")
        self._closed = False

    def launch(
        self,
        job_id: str,
        attempt: int,
        db_url: str,
        kind: JobKind | str | None = None,
        spec: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        self.reap()
        env = _server_env()
        env["JOBCTL_DB_URL"] = db_url
        if self.job_nice:
            env[processes.NICE_ENV] = str(self.job_nice)
        plan = {"kind": str(kind), "spec": spec, "name": name} if kind is not None else None
        log_name = f"supervisor-{job_id}.{attempt}.log"
        if self._fork(job_id, attempt, db_url, env, plan, log_name):
            return
        if kind is not None:
            env.update(handshake.plan_env(str(kind), spec, name))
        argv = [sys.executable, "-m", "jupyter_jobctl.procs.supervisor", job_id, str(attempt)]
        log_file = self._open_log(log_name)
        try:
            sink = log_file if log_file is not None else subprocess.DEVNULL
            child = processes.spawn(argv, env=env, new_session=True, stdout=sink, stderr=sink)
        finally:
            if log_file is not None:
                log_file.close()
        with self._lock:
            self._children.append((child, Path(log_file.name) if log_file is not None else None))

    def warm(self, db_url: str) -> None:
        """Start the launcher now, so that the first job does not wait for its imports."""
        with self._launch_lock:
            self._ensure_launcher(db_url)

    def _fork(
        self,
        job_id: str,
        attempt: int,
        db_url: str,
        env: dict[str, str],
        plan: dict[str, Any] | None,
        log_name: str,
    ) -> bool:
        """Ask the launcher for a supervisor; False when it cannot (a fresh Python then)."""
        log_path = self._log_path(log_name)
        request = {
            "job_id": job_id,
            "attempt": attempt,
            "db_url": db_url,
            "env": env,
            "cwd": os.getcwd(),
            "log": str(log_path) if log_path is not None else None,
            "launch": plan,
        }
        with self._launch_lock:
            launcher = self._ensure_launcher(db_url)
            if launcher is None:
                return False
            try:
                pid = launcher.fork(request)
            except (OSError, EOFError, TimeoutError, ValueError) as exc:
                log.warning("jobctl: the launcher failed (%s); starting supervisors afresh", exc)
                self._drop_launcher(failed=True)
                return False
        ident = Identity.of(pid)
        if ident is not None:
            with self._lock:
                self._forked.append(ident)
        return True

    def _ensure_launcher(self, db_url: str) -> _Launcher | None:
        if self._closed:
            return None
        if self._launcher is not None:
            if self._launcher.db_url == db_url and self._launcher.alive():
                return self._launcher
            self._drop_launcher(failed=not self._launcher.alive())
        if time.monotonic() - self._launcher_failed_at < LAUNCHER_RETRY_AFTER:
            return None
        stderr = self._open_log("launcher.log")
        try:
            self._launcher = _Launcher(db_url, stderr)
        except (OSError, EOFError, TimeoutError, ValueError) as exc:
            log.warning("jobctl: no launcher (%s); starting supervisors afresh", exc)
            self._launcher_failed_at = time.monotonic()
            return None
        finally:
            if stderr is not None:
                stderr.close()
        return self._launcher

    def _drop_launcher(self, *, failed: bool) -> None:
        if self._launcher is not None:
            self._launcher.close()
            self._launcher = None
        if failed:
            self._launcher_failed_at = time.monotonic()

    def close(self) -> None:
        """Stop the launcher (supervisors and their jobs keep running)."""
        with self._launch_lock:
            self._closed = True
            self._drop_launcher(failed=False)
        self.reap()

    def launcher_pid(self) -> int | None:
        launcher = self._launcher
        return launcher.proc.pid if launcher is not None and launcher.alive() else None

    def _log_path(self, name: str) -> Path | None:
        """Where a supervisor's diagnostics go, or None: a missing log never stops a job."""
        if self.log_dir is None:
            return None
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            return None
        return self.log_dir / name

    def _open_log(self, name: str) -> IO[bytes] | None:
        path = self._log_path(name)
        if path is None:
            return None
        try:
            return open(path, "ab")
        except OSError:
            return None

    def reap(self) -> None:
        """Collect exit statuses of supervisors we started, so none linger as zombies."""
        # the server's database threads start jobs concurrently: one reaper at a time
        with self._lock:
            running = []
            for child, log_file in self._children:
                if child.poll() is None:
                    running.append((child, log_file))
                elif log_file is not None:
                    with contextlib.suppress(OSError):  # keep only logs with something in them
                        if log_file.stat().st_size == 0:
                            log_file.unlink()
            self._children = running
            self._forked = [ident for ident in self._forked if ident.alive()]

    def forget(self, job_id: str) -> None:
        """Remove the job's supervisor logs (``supervisor-<id>.<attempt>.log``): those with
        something in them, and those whose supervisor outlived the launcher that reaps."""
        if self.log_dir is None:
            return
        for path in self.log_dir.glob(f"supervisor-{job_id}.*.log"):
            with contextlib.suppress(OSError):
                path.unlink()

    def is_alive(self, row: Row) -> bool | None:
        """True/False for this machine's supervisors; None when the job ran on another host."""
        if row.get("host") and row["host"] != _hostname():
            return None
        pid, start = row.get("supervisor_pid"), row.get("supervisor_start")
        if pid is None or start is None:
            return False
        return Identity(pid, start, row.get("boot_id") or "").alive()

    def _worker(self, row: Row) -> Identity | None:
        pid, start = row.get("worker_pid"), row.get("worker_start")
        if pid is None or start is None:
            return None
        return Identity(pid, start, row.get("boot_id") or "")

    def worker_alive(self, row: Row) -> bool:
        worker = self._worker(row)
        return worker is not None and worker.alive()

    def signal(self, row: Row, sig: int) -> bool:
        worker = self._worker(row)
        return worker is not None and processes.signal_group(worker, sig)

    def clean_up(self, row: Row) -> int:
        """Kill whatever the job left behind once its supervisor is gone; returns the count."""
        return processes.kill_job_processes(row["id"])

    def pending_children(self) -> int:
        """Supervisors started by this executor that are still running."""
        self.reap()
        return len(self._children) + len(self._forked)


def same_boot_identity(row: Row, role: str) -> Identity | None:
    """The recorded supervisor or worker of a job when it ran on this machine (same boot),
    else None: another machine's pids mean nothing here."""
    values = cast(dict[str, Any], row)
    pid, start, boot = values.get(f"{role}_pid"), values.get(f"{role}_start"), row.get("boot_id")
    if pid is None or start is None or not boot or boot != processes.boot_id():
        return None
    return Identity(int(pid), int(start), boot)


def _server_env() -> dict[str, str]:
    """This server's environment for a process it starts, without any job's marker."""
    return {k: v for k, v in os.environ.items() if k != processes.JOB_ENV}


def _hostname() -> str:
    import socket

    return socket.gethostname()
