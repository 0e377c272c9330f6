"""Per-job supervisor: ``python -m jupyter_jobctl.procs.supervisor JOB_ID ATTEMPT``.

Runs in its own session (started by the local executor), outlives the Jupyter server, and
owns one attempt of one job: it starts the worker in its own process group, captures its
stdout/stderr as log events, heartbeats the job row, watches it for stop and pause, runs
the stop ladder on the persisted deadlines, and records the terminal state.

Linux only: it waits for the worker through a pidfd (``os.pidfd_open``, ``os.waitid``) and
finds the job's stray processes in /proc (see :mod:`processes`).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from typing import IO, TYPE_CHECKING, Any

from jupyter_jobctl.core.states import EventType, JobKind, JobState
from jupyter_jobctl.procs import handshake, processes
from jupyter_jobctl.procs.processes import Identity

if TYPE_CHECKING:
    from jupyter_jobctl.db.models import JobRow
    from jupyter_jobctl.db.store import EventItem, Store

# Started as a fresh Python (no launcher), the supervisor imports the store (SQLAlchemy) only
# after the worker was spawned: the two imports then overlap.

TICK = 0.025  # how often the job row is read for stop/pause
FLUSH_EVERY = 0.05


class _LogPump:
    """Reads a pipe line by line into a shared queue of log events."""

    def __init__(self, pipe: IO[bytes], stream: str, queue: deque[EventItem]) -> None:
        self.thread = threading.Thread(target=self._run, args=(pipe, stream, queue), daemon=True)
        self.thread.start()

    @staticmethod
    def _run(pipe: IO[bytes], stream: str, queue: deque[EventItem]) -> None:
        log = EventType.LOG.value
        with pipe:
            for raw in iter(pipe.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                queue.append((log, {"line": line, "stream": stream}))


class Supervisor:
    def __init__(self, job_id: str, attempt: int, db_url: str) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.db_url = db_url
        self._store: Store | None = None  # opened once the worker is on its way
        self.logs: deque[EventItem] = deque()
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_id: Identity | None = None
        self.sent: set[str] = set()
        self.group_stopped = False
        self.handshake: socket.socket | None = None  # until the worker said READY
        self.to_worker: socket.socket | None = None  # after GO: a stop is said here too

    # ------------------------------------------------------------ helpers

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the supervisor has not opened the job database yet")
        return self._store

    def jobctl_log(self, line: str) -> None:
        self.logs.append((EventType.LOG.value, {"line": line, "stream": "jobctl"}))

    def flush(self) -> None:
        if not self.logs:
            return
        batch = []
        while self.logs:
            batch.append(self.logs.popleft())
        try:
            self.store.append_events(self.job_id, self.attempt, batch)
        except Exception:
            self.logs.extendleft(reversed(batch))  # retry on the next tick; never drop

    def _signal(self, sig: int, *, group: bool, label: str) -> None:
        assert self.worker_id is not None
        name = processes.signal_name(sig)
        if group and sig != signal.SIGINT:
            # a stopped (paused) process never handles SIGTERM: wake it first, as Slurm does
            processes.signal_group(self.worker_id, signal.SIGCONT)
            name = f"SIGCONT+{name}"
        if group:
            processes.signal_group(self.worker_id, sig)
        else:
            self.worker_id.send(sig)
        where = "process group" if group else "worker"
        self.jobctl_log(f"[STOP] signal {name} to {where} ({label})")
        self.flush()  # now, so the line is numbered before anything the signal causes

    # ------------------------------------------------------------ main

    def run(self, launch: dict[str, Any] | None) -> int:
        processes.become_subreaper()
        spawn_error: OSError | None = None
        if launch is not None:
            try:
                self._spawn(launch["kind"], launch["spec"])
            except OSError as exc:
                spawn_error = exc
        from jupyter_jobctl.db.store import Store

        self._store = Store(self.db_url)
        me = Identity.of(os.getpid())
        assert me is not None
        if not self.store.record_process(
            self.job_id, self.attempt, "supervisor", me.pid, me.start, me.boot
        ):
            # stale attempt or already finished: nothing here is ours to run
            if self.worker is not None and self.worker_id is not None:
                processes.signal_group(self.worker_id, signal.SIGKILL)
                self.worker.wait()
            return 0
        row = self.store.get_row(self.job_id)
        if self.worker is None and spawn_error is None:
            if row["status"] == JobState.STOPPING:
                self.store.finish(
                    self.job_id,
                    self.attempt,
                    JobState.CANCELLED,
                    reason="Stopped before the job started.",
                    logs=["[CANCELLATION] stopped before the worker started"],
                )
                return 0
            try:
                self._spawn(row["kind"], json.loads(row["spec"]))
            except OSError as exc:
                spawn_error = exc
        if spawn_error is not None:
            self.store.finish(
                self.job_id,
                self.attempt,
                JobState.FAILED,
                reason=f"Could not start the job: {spawn_error}.",
                logs=[f"[jobctl] could not start: {spawn_error}"],
            )
            return 0
        worker = self.worker_id
        assert worker is not None
        # a command runs once its process exists; a Python worker says so itself, when its
        # runtime is attached and the job's code is about to run
        if row["kind"] == JobKind.COMMAND:
            self.store.mark_running(self.job_id, self.attempt, worker)
        else:
            self.store.record_process(
                self.job_id, self.attempt, "worker", worker.pid, worker.start, worker.boot
            )
        status = self._watch(row)
        return self._finish(status)

    def _spawn(self, kind: JobKind | str, spec: dict[str, Any]) -> None:
        env = dict(os.environ)
        env.update(spec.get("env") or {})
        env.update(
            {
                processes.JOB_ENV: self.job_id,
                "JOBCTL_ATTEMPT": str(self.attempt),
                "JOBCTL_DB_URL": self.db_url,
                "PYTHONUNBUFFERED": "1",
            }
        )
        theirs: socket.socket | None = None
        if kind == JobKind.COMMAND:
            argv = list(spec["argv"])
        else:
            argv = [
                sys.executable,
                "-m",
                "jupyter_jobctl.procs.worker",
                self.job_id,
                str(self.attempt),
            ]
            self.handshake, theirs = socket.socketpair()
            env[handshake.FD_ENV] = str(theirs.fileno())
            env.update(handshake.plan_env(kind, spec))  # no database read before READY
        nice = env.pop(processes.NICE_ENV, "0")
        try:
            self.worker = processes.spawn(
                argv,
                env=env,
                nice=int(nice) if nice.lstrip("-").isdigit() else 0,
                cwd=spec.get("cwd"),
                new_group=True,
                die_with_parent=True,  # fate-share: a worker never runs unsupervised
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=[theirs.fileno()] if theirs is not None else [],
            )
        finally:
            if theirs is not None:
                theirs.close()
        self.worker_id = Identity.of(self.worker.pid)
        assert self.worker_id is not None and self.worker.stdout and self.worker.stderr
        self.pumps = [
            _LogPump(self.worker.stdout, "stdout", self.logs),
            _LogPump(self.worker.stderr, "stderr", self.logs),
        ]

    def _watch(self, row: JobRow) -> int:
        """Wait for the worker to exit, heartbeating and obeying stop/pause; returns wait status."""
        assert self.worker is not None and self.worker_id is not None
        pidfd = os.pidfd_open(self.worker.pid)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if self.handshake is not None:
            poller.register(self.handshake.fileno(), select.POLLIN)
        interval = row["heartbeat_interval"] or 1.0
        next_beat = time.monotonic() + interval
        next_flush = time.monotonic() + FLUSH_EVERY
        command = row["kind"] == JobKind.COMMAND
        try:
            while True:
                ready = dict(poller.poll(TICK * 1000))
                if self.handshake is not None and self.handshake.fileno() in ready:
                    poller.unregister(self.handshake.fileno())
                    self._answer_worker()
                if pidfd in ready:
                    break
                now = time.monotonic()
                if now >= next_flush:
                    self.flush()
                    next_flush = now + FLUSH_EVERY
                if now >= next_beat:
                    self.store.heartbeat(self.job_id, self.attempt)
                    next_beat = now + interval
                self._obey(command)
            # exited: observe without reaping, so the group id stays ours while we clean up
            info = os.waitid(os.P_PID, self.worker.pid, os.WEXITED | os.WNOWAIT)
            assert info is not None
            processes.signal_group(self.worker_id, signal.SIGKILL)
            processes.kill_job_processes(self.job_id, exclude=[self.worker.pid])
            _, wait_status = os.waitpid(self.worker.pid, 0)
            self.worker.returncode = os.waitstatus_to_exitcode(wait_status)
        finally:
            os.close(pidfd)
            for end in (self.handshake, self.to_worker):
                if end is not None:
                    end.close()
        for pump in self.pumps:
            pump.thread.join(timeout=2)
        self.flush()
        return wait_status

    def _answer_worker(self) -> None:
        """The worker is ready: mark the job running and tell it to go (or to stop)."""
        end, self.handshake = self.handshake, None
        assert end is not None
        try:
            if end.recv(1) == handshake.READY:
                status = self.store.mark_running(self.job_id, self.attempt)
                handshake.answer(end, status)
                if status in handshake.RUNNABLE:
                    self.to_worker, end = end, None  # kept: a later stop is said here at once
        except OSError:
            pass  # the worker is gone; its exit is what we record
        finally:
            if end is not None:
                end.close()

    def _tell_worker_to_stop(self) -> None:
        """The stop flag, straight to the worker's runtime: no wait for its database poll
        (nor for its database connection, which it opens in the background at start)."""
        if self.to_worker is not None and "coop" not in self.sent:
            self.sent.add("coop")
            try:
                self.to_worker.sendall(handshake.STOP)
            except OSError:
                pass  # gone already

    def _obey(self, command: bool) -> None:
        """One look at the job row: run the stop ladder or pause/resume a command job."""
        try:
            row = self.store.get_row(self.job_id)
        except Exception:
            return
        worker = self.worker_id
        if row["attempt"] != self.attempt or worker is None:
            return
        status = row["status"]
        if status == JobState.STOPPING or row["stop_requested_at"] is not None:
            self._tell_worker_to_stop()
            if self.group_stopped:
                processes.signal_group(worker, signal.SIGCONT)
                self.group_stopped = False
            now = time.time()
            if "int" not in self.sent and row["interrupt_at"] and now >= row["interrupt_at"]:
                self.sent.add("int")
                self._signal(signal.SIGINT, group=command, label="interrupt_after")
            if "term" not in self.sent and row["term_at"] and now >= row["term_at"]:
                self.sent.add("term")
                self._signal(signal.SIGTERM, group=True, label="stop_grace")
            if "kill" not in self.sent and row["kill_at"] and now >= row["kill_at"]:
                self.sent.add("kill")
                self._signal(signal.SIGKILL, group=True, label="kill_grace")
        elif command and status == JobState.PAUSED and not self.group_stopped:
            processes.signal_group(worker, signal.SIGSTOP)
            self.group_stopped = True
            self.store.set_worker_stopped(self.job_id, self.attempt, True)
        elif command and status == JobState.RUNNING and self.group_stopped:
            processes.signal_group(worker, signal.SIGCONT)
            self.group_stopped = False
            self.store.set_worker_stopped(self.job_id, self.attempt, False)

    def crashed(self, exc: BaseException) -> None:
        """Never leave a job initializing or running behind a dead supervisor."""
        if self.worker_id is not None:
            processes.signal_group(self.worker_id, signal.SIGKILL)
        try:
            if self._store is None:
                from jupyter_jobctl.db.store import Store

                self._store = Store(self.db_url)
            self.flush()
            self.store.finish(
                self.job_id,
                self.attempt,
                JobState.FAILED,
                reason=f"The job's supervisor failed: {type(exc).__name__}: {exc}",
                logs=[f"[jobctl] supervisor failed: {type(exc).__name__}: {exc}"],
            )
        except Exception:
            pass  # the database itself is the problem: reconciliation will end the job

    def _finish(self, wait_status: int) -> int:
        code = os.waitstatus_to_exitcode(wait_status)
        sig = processes.signal_name(-code) if code < 0 else None
        exit_code = code if code >= 0 else None
        how = f"killed by {sig}" if sig else f"exit code {code}"
        row = self.store.get_row(self.job_id)
        if row["status"] == JobState.STOPPING:
            self.store.finish(
                self.job_id,
                self.attempt,
                JobState.CANCELLED,
                exit_code=exit_code,
                signal=sig,
                reason=f"Stopped by request (worker {how}).",
                logs=[f"[CANCELLATION] job cancelled (worker {how})"],
            )
        elif code == 0:
            self.store.finish(self.job_id, self.attempt, JobState.COMPLETED, exit_code=0)
        else:
            detail = row["reason"]  # what the worker said went wrong, if it could
            reason = f"{detail.rstrip('.')} (worker {how})." if detail else f"Worker {how}."
            self.store.finish(
                self.job_id,
                self.attempt,
                JobState.FAILED,
                exit_code=exit_code,
                signal=sig,
                reason=reason,
                logs=[f"[jobctl] worker {how}"],
            )
        return 0


def run_attempt(job_id: str, attempt: int, db_url: str, launch: dict[str, Any] | None) -> int:
    """Supervise one attempt: from ``main`` or in a child forked by the launcher."""
    sup = Supervisor(job_id, attempt, db_url)
    try:
        return sup.run(launch)
    except BaseException as exc:
        sup.crashed(exc)
        raise
    finally:
        if sup._store is not None:
            sup._store.close()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    launch = json.loads(os.environ.pop(handshake.PLAN_ENV, "null"))
    return run_attempt(argv[0], int(argv[1]), os.environ["JOBCTL_DB_URL"], launch)


if __name__ == "__main__":
    sys.exit(main())
