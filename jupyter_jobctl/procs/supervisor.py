"""Per-job supervisor: ``python -m jupyter_jobctl.procs.supervisor JOB_ID ATTEMPT``.

Runs in its own session (started by the local executor), outlives the Jupyter server, and
owns one attempt of one job: it starts the worker in its own process group, captures its
stdout/stderr as log events, heartbeats the job row, watches it for stop and pause, runs
the stop ladder on the persisted deadlines, and records the terminal state.

Linux only: it waits for the worker through a pidfd (``os.pidfd_open``, ``os.waitid``) and
finds the job's stray processes in /proc (see :mod:`processes`).
"""

from __future__ import annotations

import codecs
import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, TypeVar

from jupyter_jobctl.core.errors import JobNotFound, StorageError
from jupyter_jobctl.core.outage import Outage
from jupyter_jobctl.core.states import TERMINAL, EventType, JobKind, JobState
from jupyter_jobctl.procs import handshake, processes, scratch, title
from jupyter_jobctl.procs.processes import Identity

if TYPE_CHECKING:
    from jupyter_jobctl.db.models import JobRow
    from jupyter_jobctl.db.store import EventItem, Store

# Started as a fresh Python (no launcher), the supervisor imports the store (SQLAlchemy) only
# after the worker was spawned: the two imports then overlap.

TICK = 0.025  # how often the job row is read for stop/pause
FLUSH_EVERY = 0.05


MAX_BUFFERED = 20_000  # log events held while the database is away; then the pipes wait
READ_CHUNK = 1 << 16  # bytes read from a pipe at once
MAX_LINE = 8 * 1024  # characters: a longer line is cut into pieces (as the store's events)
RETRY_FOR = 24 * 3600.0  # seconds a write that must happen is retried through an outage
T = TypeVar("T")


def _say(message: str) -> None:
    """The supervisor's own diagnostics: its stderr is its log file (executor's log_dir)."""
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # that file's disk may be the full one: never fail for it
        pass


def _drop_empty_log(job_id: str, attempt: int) -> None:
    """Our stderr is this attempt's diagnostics file: said nothing, keep nothing. (Whoever
    opened it may be gone by now: a launcher that ended while the job ran.)"""
    try:
        info = os.fstat(2)
        if not stat.S_ISREG(info.st_mode) or info.st_size:
            return
        path = os.readlink("/proc/self/fd/2")
        if os.path.basename(path) == f"supervisor-{job_id}.{attempt}.log":
            os.unlink(path)
    except OSError:
        pass


class _LogPump:
    """Reads a pipe in bounded chunks into a shared queue of log events, one per line.

    Never holds more than one chunk and ``MAX_LINE`` characters of a line: a longer line
    becomes several events. While the queue is full (the database is away) it stops
    reading, so the job blocks on its own output instead of anything being dropped.
    """

    def __init__(self, pipe: IO[bytes], stream: str, queue: deque[EventItem]) -> None:
        self.thread = threading.Thread(target=self._run, args=(pipe, stream, queue), daemon=True)
        self.thread.start()

    @staticmethod
    def _run(pipe: IO[bytes], stream: str, queue: deque[EventItem]) -> None:
        log = EventType.LOG.value
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        fd = pipe.fileno()
        partial = ""
        with pipe:
            while True:
                try:
                    raw = os.read(fd, READ_CHUNK)
                except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                    continue
                text = partial + decoder.decode(raw, final=not raw)
                if raw:
                    lines = text.split("\n")
                    partial = lines.pop()  # no newline yet: the start of the next line
                else:  # the end: what is left is a last line without a newline
                    lines, partial = ([text] if text else []), ""
                while len(partial) > MAX_LINE:  # an endless line: its pieces, as they come
                    lines.append(partial[:MAX_LINE])
                    partial = partial[MAX_LINE:]
                for line in lines:
                    while len(queue) >= MAX_BUFFERED:
                        time.sleep(0.01)
                    line = line[:-1] if line.endswith("\r") else line
                    for i in range(0, max(len(line), 1), MAX_LINE):
                        queue.append((log, {"line": line[i : i + MAX_LINE], "stream": stream}))
                if not raw:
                    return


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
        # the pair with a Python worker, open for its life: READY/GO, STOP at any time, and
        # the events the worker hands over when it ends before its own store opened
        self.handshake: socket.socket | None = None
        self.inbox = handshake.Inbox()
        # a database outage: retried with backoff, said sparingly (to the supervisor's log)
        self.outage = Outage(f"supervisor of job {job_id}", _say)
        self.job_code_started = False  # a command at once; a Python worker once told GO
        self.stopped_early = False  # stopped before GO: the worker was ended, nothing ran

    # ------------------------------------------------------------ helpers

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the supervisor has not opened the job database yet")
        return self._store

    def jobctl_log(self, line: str) -> None:
        self.logs.append((EventType.LOG.value, {"line": line, "stream": "jobctl"}))

    def flush(self) -> bool:
        """Write the buffered events in order; False (kept, retried later) when it failed
        or an outage's backoff says not yet."""
        if not self.logs:
            return True
        if self._store is None or not self.outage.due():
            return False
        batch = []
        while self.logs:
            batch.append(self.logs.popleft())
        began = time.monotonic()
        try:
            self.store.append_events(self.job_id, self.attempt, batch)
        except StorageError as exc:
            self.logs.extendleft(reversed(batch))  # retry after the backoff; never drop
            self.outage.failed(exc, len(self.logs), time.monotonic() - began)
            return False
        except JobNotFound:  # deleted (it was declared over): nothing is ours to write
            self.logs.clear()
            return True
        except Exception as exc:  # not a database error we know: the same, to be safe
            self.logs.extendleft(reversed(batch))  # retry on the next tick; never drop
            self.outage.failed(exc, len(self.logs), time.monotonic() - began)
            return False
        self._recovered()
        return True

    def _recovered(self) -> None:
        cause = self.outage.last_error
        lasted = self.outage.succeeded()
        if lasted is not None:  # the job's log says there was an outage, and why
            self.jobctl_log(
                f"[jobctl] the job database could not be written for {lasted:.1f} s "
                f"({cause}); the job kept running and its events were kept and written in order"
            )

    def _persist(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A database call that must happen (the job's state): retried with backoff through
        an outage (up to ``RETRY_FOR``), the buffered events written first."""
        while True:
            began = time.monotonic()
            try:
                result = fn(*args, **kwargs)
            except StorageError as exc:
                delay = self.outage.failed(exc, len(self.logs), time.monotonic() - began)
                if time.monotonic() - (self.outage.since or 0.0) > RETRY_FOR:
                    raise
                time.sleep(delay)
                continue
            self._recovered()
            return result

    def _drain(self) -> None:
        """Write every buffered event (before the job's last state), however long it takes
        (and the note of an outage that ended meanwhile)."""
        while not self.flush() or self.logs:
            if time.monotonic() - (self.outage.since or time.monotonic()) > RETRY_FOR:
                return
            time.sleep(max(0.01, self.outage.delay))

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
        name = (launch or {}).get("name")
        title.set_title("supervisor", self.job_id, name)  # not the launcher's command line
        spawn_error: OSError | None = None
        if launch is not None:
            try:
                self._spawn(launch["kind"], launch["spec"], name)
            except OSError as exc:
                spawn_error = exc
        from jupyter_jobctl.db.store import Store

        self._store = Store(self.db_url)
        me = Identity.of(os.getpid())
        assert me is not None
        if not self._persist(
            self.store.record_process,
            self.job_id,
            self.attempt,
            "supervisor",
            me.pid,
            me.start,
            me.boot,
        ):
            # stale attempt or already finished: nothing here is ours to run
            if self.worker is not None and self.worker_id is not None:
                processes.signal_group(self.worker_id, signal.SIGKILL)
                self.worker.wait()
            return 0
        row = self._persist(self.store.get_row, self.job_id)
        if name is None:
            title.set_title("supervisor", self.job_id, row["name"])
        if self.worker is None and spawn_error is None:
            if row["status"] == JobState.STOPPING:
                self._persist(
                    self.store.finish,
                    self.job_id,
                    self.attempt,
                    JobState.CANCELLED,
                    reason="Stopped before the job started.",
                    logs=["[CANCELLATION] stopped before the worker started"],
                )
                return 0
            try:
                self._spawn(row["kind"], json.loads(row["spec"]), row["name"])
            except OSError as exc:
                spawn_error = exc
        if spawn_error is not None:
            self._persist(
                self.store.finish,
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
            self._persist(self.store.mark_running, self.job_id, self.attempt, worker)
            self.job_code_started = True
        elif row["status"] == JobState.STOPPING:
            self._end_before_go(worker)  # stopped while it started: no need to wait for it
        else:
            self._persist(
                self.store.record_process,
                self.job_id,
                self.attempt,
                "worker",
                worker.pid,
                worker.start,
                worker.boot,
            )
        status = self._watch(row)
        return self._finish(status)

    def _spawn(self, kind: JobKind | str, spec: dict[str, Any], name: str | None = None) -> None:
        env = dict(os.environ)
        # the job's env never overrides jobctl's own variables (specs refuse them; a spec
        # stored before that rule is filtered here)
        env.update(
            {k: v for k, v in (spec.get("env") or {}).items() if not k.startswith("JOBCTL_")}
        )
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
            env.update(handshake.plan_env(kind, spec, name))  # no database read before READY
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
        channel = self.handshake
        if channel is not None:
            channel.setblocking(False)
            poller.register(channel.fileno(), select.POLLIN)
        interval = row["heartbeat_interval"] or 1.0
        next_beat = time.monotonic() + interval
        next_flush = time.monotonic() + FLUSH_EVERY
        command = row["kind"] == JobKind.COMMAND
        try:
            while True:
                ready = dict(poller.poll(TICK * 1000))
                if channel is not None and channel.fileno() in ready and not self._hear(channel):
                    poller.unregister(channel.fileno())
                    channel = None  # the worker closed its end: nothing more to hear
                if pidfd in ready:
                    break
                now = time.monotonic()
                if now >= next_flush:
                    self.flush()
                    next_flush = now + FLUSH_EVERY
                if now >= next_beat:
                    next_beat = now + interval
                    try:  # an outage must not end the job: the next beat retries
                        self.store.heartbeat(self.job_id, self.attempt)
                    except StorageError as exc:
                        self.outage.failed(exc, len(self.logs), time.monotonic() - now)
                    else:
                        if not self.logs:  # with events waiting, their write decides
                            self._recovered()
                self._obey(command)
            if channel is not None:
                self._hear_rest(channel)  # what it handed over on its way out
            # exited: observe without reaping, so the group id stays ours while we clean up
            info = os.waitid(os.P_PID, self.worker.pid, os.WEXITED | os.WNOWAIT)
            assert info is not None
            processes.signal_group(self.worker_id, signal.SIGKILL)
            processes.kill_job_processes(self.job_id, exclude=[self.worker.pid])
            scratch.remove_dirs(self.job_id, self.attempt)  # what a killed worker left
            _, wait_status = os.waitpid(self.worker.pid, 0)
            self.worker.returncode = os.waitstatus_to_exitcode(wait_status)
        finally:
            os.close(pidfd)
            if self.handshake is not None:
                self.handshake.close()
        for pump in self.pumps:
            pump.thread.join(timeout=2)
        self.flush()
        return wait_status

    def _hear(self, end: socket.socket) -> bool:
        """Read what the worker said; False once it closed its end (or is gone)."""
        try:
            data = end.recv(1 << 16)
        except BlockingIOError:
            return True
        except OSError:
            return False
        for message in self.inbox.feed(data):
            if message == handshake.READY:
                self._answer_ready(end)
            else:
                events, latest = message
                self._take_over(events, latest)
        return bool(data)

    def _hear_rest(self, end: socket.socket) -> None:
        """The worker has exited: read what is left on the pair, up to its end."""
        end.settimeout(2.0)  # a grandchild holding the worker's end must not stall us
        try:
            while self._hear(end):
                pass
        except TimeoutError:
            pass

    def _answer_ready(self, end: socket.socket) -> None:
        """The worker is ready: mark the job running and tell it to go (or to stop)."""
        try:
            status = self._persist(self.store.mark_running, self.job_id, self.attempt)
            handshake.answer(end, status)
            if status in handshake.RUNNABLE:
                self.job_code_started = True
            else:
                self.sent.add("coop")  # it was told to stop: no second STOP
        except OSError:
            pass  # the worker is gone; its exit is what we record

    def _take_over(self, events: list[EventItem], latest: dict[str, Any]) -> None:
        """Events the worker reported before its store opened: written here, in order."""
        self.flush()  # its output so far comes first
        self.logs.extend(events)
        self.flush()
        if latest:
            try:  # through an outage too: the worker handed it over to be kept
                self._persist(self.store.append_events, self.job_id, self.attempt, [], latest)
            except Exception as exc:
                self.jobctl_log(f"[jobctl] the job's last progress could not be stored: {exc}")

    def _tell_worker_to_stop(self) -> None:
        """The stop flag, straight to the worker's runtime: no wait for its database poll
        (nor for its database connection, which it opens in the background at start)."""
        if self.handshake is not None and "coop" not in self.sent:
            self.sent.add("coop")
            try:
                self.handshake.sendall(handshake.STOP)
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
        if status in TERMINAL:
            # declared over elsewhere (lost while this machine was cut off, cancelled while
            # queued): nothing here may go on running it
            if "gone" not in self.sent:
                self.sent.add("gone")
                processes.signal_group(worker, signal.SIGKILL)
            return
        if status == JobState.STOPPING or row["stop_requested_at"] is not None:
            if not self.job_code_started:
                self._end_before_go(worker)
                return
            self._tell_worker_to_stop()
            if self.group_stopped:
                processes.signal_group(worker, signal.SIGCONT)
                self.group_stopped = False
            now = time.time()
            interrupt_at = row["interrupt_at"]
            if "int" not in self.sent and interrupt_at and now >= interrupt_at:
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
            self._persist(self.store.set_worker_stopped, self.job_id, self.attempt, True)
        elif command and status == JobState.RUNNING and self.group_stopped:
            processes.signal_group(worker, signal.SIGCONT)
            self.group_stopped = False
            self._persist(self.store.set_worker_stopped, self.job_id, self.attempt, False)

    def _end_before_go(self, worker: Identity) -> None:
        """A stop before the worker was told GO: only jobctl's start-up ran in it, nothing of
        the job's (its code starts after GO alone). There is no unwinding to wait for,
        however long a Python start takes on this machine: end it now."""
        if not self.stopped_early:
            self.stopped_early = True
            processes.signal_group(worker, signal.SIGKILL)

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
        self._drain()  # everything the job said comes before its end
        self._persist(self.store.flush_log_tail, self.job_id, self.attempt)
        row = self._persist(self.store.get_row, self.job_id)
        self._drain()  # an outage that ended just now left a note
        if row["status"] == JobState.STOPPING and self.stopped_early:
            self._persist(
                self.store.finish,
                self.job_id,
                self.attempt,
                JobState.CANCELLED,
                reason="Stopped before the job started.",
                logs=["[CANCELLATION] stopped before the job's code started"],
            )
        elif row["status"] == JobState.STOPPING:
            self._persist(
                self.store.finish,
                self.job_id,
                self.attempt,
                JobState.CANCELLED,
                exit_code=exit_code,
                signal=sig,
                reason=f"Stopped by request (worker {how}).",
                logs=[f"[CANCELLATION] job cancelled (worker {how})"],
            )
        elif code == 0:
            self._persist(
                self.store.finish, self.job_id, self.attempt, JobState.COMPLETED, exit_code=0
            )
        else:
            detail = row["reason"]  # what the worker said went wrong, if it could
            reason = f"{detail.rstrip('.')} (worker {how})." if detail else f"Worker {how}."
            self._persist(
                self.store.finish,
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
        _drop_empty_log(job_id, attempt)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    launch = json.loads(os.environ.pop(handshake.PLAN_ENV, "null"))
    return run_attempt(argv[0], int(argv[1]), os.environ["JOBCTL_DB_URL"], launch)


if __name__ == "__main__":
    sys.exit(main())
