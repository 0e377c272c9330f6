"""The API a job uses from inside its worker process (README: Inside a job).

    from jupyter_jobctl import runtime as jc
    job = jc.current()
    for epoch in job.progress(range(10), unit="epoch"):
        job.metric(loss=0.1, epoch=epoch)
        job.checkpoint()

Importing this module is cheap (no Jupyter, no tornado, no SQLAlchemy until a worker
attaches). In a tight loop a checkpoint is one attribute read: a background thread polls
the job row for stop/pause and flushes buffered events every ``FLUSH_INTERVAL`` seconds.
A stop does not wait for that thread's database connection: the supervisor's STOP arrives
over the worker's socket pair (read by a thread from attach on), and a job that ends before
its connection opened hands its reports to the supervisor (see :mod:`procs.handshake`).
Outside a worker, :func:`current` returns a stand-in that does nothing (``log`` prints).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from jupyter_jobctl.core.outage import Outage
from jupyter_jobctl.core.states import EventType, JobState

if TYPE_CHECKING:
    import socket

    from jupyter_jobctl.db.store import EventItem, Store
    from jupyter_jobctl.procs.handshake import WorkerEnd

T = TypeVar("T")
# event types as the queue holds them (plain strings, bound once: reporting is a hot path)
_LOG = EventType.LOG.value
_METRIC = EventType.METRIC.value
_PROGRESS = EventType.PROGRESS.value

FLUSH_INTERVAL = 0.05
POLL_INTERVAL = 0.025  # stop/pause flag: half the flush period, for quick cooperative stops
PROGRESS_INTERVAL = 0.2  # at most this often a progress event per loop
STORE_WAIT = 60.0  # seconds a flush waits for the reporter thread to open the database
STOP_LOOK = 0.01  # how often that wait looks for a stop
MAX_BATCH = 2000
# While the database is away (an outage) reports wait in memory, at most this many: then the
# job itself waits in log()/metric() until they are written (nothing is dropped)
MAX_QUEUED = 100_000
EXIT_PATIENCE = 300.0  # seconds the worker's exit waits for the database (no supervisor pair)

__all__ = ["Cancelled", "Job", "current"]


class Cancelled(BaseException):
    """Raised at a checkpoint once a stop was requested.

    A BaseException (like KeyboardInterrupt) so ``except Exception`` in user code does not
    swallow the stop; ``finally`` blocks and context managers still run.
    """


class _Progress:
    """tqdm-like counter: the rate over a sliding window of ``RATE_WINDOW`` seconds (at least
    the last two samples), the ETA from it.

    A window, not the instantaneous rate between two reports: results that arrive in bursts
    (pytest-xdist hands several over at once) must not read as thousands per second.
    """

    __slots__ = ("_seen", "done", "rate", "total", "unit")

    RATE_WINDOW = 10.0
    MIN_GAP = 0.05  # samples closer than this to the previous one are not kept

    def __init__(self, total: float | None, unit: str, done: float = 0) -> None:
        self.done = done
        self.total = total
        self.unit = unit
        self.rate: float | None = None
        self._seen: deque[tuple[float, float]] = deque([(time.monotonic(), done)])

    def sample(self) -> dict[str, Any]:
        now = time.monotonic()
        seen = self._seen
        if self.done < seen[-1][1]:  # went back (a new run of the loop): start over
            seen.clear()
            self.rate = None
        if not seen or now - seen[-1][0] >= self.MIN_GAP:
            seen.append((now, self.done))
        while len(seen) > 2 and now - seen[1][0] >= self.RATE_WINDOW:
            seen.popleft()
        t0, n0 = seen[0]
        if now > t0 and self.done > n0:
            self.rate = (self.done - n0) / (now - t0)
        eta = None
        if self.rate and self.total is not None:
            eta = max(0.0, (self.total - self.done) / self.rate)
        return {
            "done": self.done,
            "total": self.total,
            "unit": self.unit,
            "rate": self.rate,
            "eta_s": eta,
        }


class Job:
    """Handle of the running job. Use :func:`current` to get it."""

    # set by the poller: a stop or pause is pending, so checkpoints must look closer
    _flag = False
    _manual: _Progress | None = None  # the counter of set_progress, once called
    handed_over = False  # closed before the store opened: the supervisor wrote the reports

    def __init__(
        self,
        job_id: str,
        attempt: int,
        config: dict[str, Any],
        open_store: Callable[[], Store],
        end: socket.socket | None = None,
    ) -> None:
        self.id = job_id
        self.attempt = attempt
        self.config = config
        # the store (SQLAlchemy: ~200 ms to import) is opened by the reporter thread, so the
        # job's code starts at once; reports queue up meanwhile
        self._open_store = open_store
        self._store: Store | None = None
        self._store_ready = threading.Event()
        self._queue: deque[EventItem] = deque()
        self._latest: dict[str, Any] = {}
        self._latest_lock = threading.Lock()
        self._stop_requested = False
        self._paused = False
        self._resumed = threading.Event()
        self._resumed.set()
        self._closed = threading.Event()
        self._flush_lock = threading.Lock()
        # the supervisor's end of the start handshake: its STOP sets the flag from now on
        self.channel: WorkerEnd | None = None
        if end is not None:
            from jupyter_jobctl.procs.handshake import WorkerEnd

            self.channel = WorkerEnd(end, self.stop_now)
        # a database outage: the reporter backs off and says so sparingly (stderr: the log)
        self._outage = Outage("job runtime", _say)
        self._thread = threading.Thread(target=self._run, name="jobctl-reporter", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- reporting

    def _wait_for_room(self) -> None:
        """The queue is full (the database is away): wait until the reporter wrote some.

        Not while a stop is pending (the job must reach its checkpoint), nor when nothing
        can write the queue any more (the reporter ended).
        """
        while (
            len(self._queue) >= MAX_QUEUED
            and not self._stop_requested
            and self._thread.is_alive()
            and threading.current_thread() is not self._thread
        ):
            time.sleep(0.01)

    def log(self, *parts: Any, stream: str = "stdout") -> None:
        line = " ".join(str(p) for p in parts)
        for piece in line.splitlines() or [""]:
            if len(self._queue) >= MAX_QUEUED:
                self._wait_for_room()
            self._queue.append((_LOG, {"line": piece, "stream": stream}))

    def metric(self, step: int | None = None, **values: Any) -> None:
        data: dict[str, Any] = dict(values)
        if step is not None:
            data["step"] = step
        if len(self._queue) >= MAX_QUEUED:
            self._wait_for_room()
        self._queue.append((_METRIC, data))
        with self._latest_lock:
            self._latest.setdefault("metrics", {}).update(values)

    def set_progress(
        self, done: float, total: float | None = None, unit: str = "it", checkpoint: bool = True
    ) -> None:
        """Report progress by hand (``progress()`` does it for loops); checkpoints by default."""
        prog = self._manual
        if prog is None or prog.unit != unit or prog.total != total:
            prog = self._manual = _Progress(total, unit, done)
        prog.done = done
        self._report_progress(prog)
        if checkpoint:
            self.checkpoint()

    def _report_progress(self, prog: _Progress) -> None:
        data = prog.sample()
        if len(self._queue) >= MAX_QUEUED:
            self._wait_for_room()
        self._queue.append((_PROGRESS, data))
        with self._latest_lock:
            self._latest.update(
                progress_done=data["done"],
                progress_total=data["total"],
                progress_unit=data["unit"],
                progress_rate=data["rate"],
                progress_eta=data["eta_s"],
            )

    def event(self, type_: EventType | str, data: dict[str, Any], **latest: Any) -> None:
        """Low-level: queue any event type (used by the pytest plugin)."""
        if len(self._queue) >= MAX_QUEUED:
            self._wait_for_room()
        self._queue.append((str(type_), data))
        if latest:
            with self._latest_lock:
                self._latest.update(latest)

    def progress(
        self, iterable: Iterable[T], total: float | None = None, unit: str = "it"
    ) -> Iterator[T]:
        """Iterate like tqdm: checkpoints before each step, reports progress with rate and ETA."""
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        prog = _Progress(total, unit)
        self._report_progress(prog)
        monotonic = time.monotonic
        last_t = monotonic()
        next_t = last_t + PROGRESS_INTERVAL
        n = last_n = reported = 0
        # look at the clock only every `stride` steps (tqdm's dynamic miniters idea)
        check_at = 1
        for item in iterable:
            if self._flag:
                self.checkpoint(f"{unit} {n}")
            yield item
            n += 1
            if n >= check_at:
                now = monotonic()
                if now >= next_t:
                    prog.done = reported = n
                    self._report_progress(prog)
                    next_t = now + PROGRESS_INTERVAL
                # steps per quarter interval at the current speed: adapts to slow and fast loops
                stride = max(1, int((n - last_n) * PROGRESS_INTERVAL / 4 / max(now - last_t, 1e-9)))
                stride = min(stride, 100_000)
                last_t, last_n = now, n
                check_at = n + stride
        if n != reported:  # the last step may have reported already: never the same twice
            prog.done = n
            self._report_progress(prog)

    # ---------------------------------------------------------------- control

    def should_stop(self) -> bool:
        return self._stop_requested

    def checkpoint(self, label: str | None = None) -> None:
        """Raise :class:`Cancelled` if a stop was requested; block here while paused."""
        if not self._flag:
            return
        if self._paused and not self._stop_requested:
            self.log("[PAUSE] paused at checkpoint", stream="jobctl")
            self.flush()
            while self._paused and not self._stop_requested:
                self._resumed.wait(0.5)
            if not self._stop_requested:
                self.log("[PAUSE] resumed", stream="jobctl")
        if self._stop_requested:
            raise Cancelled(label or "checkpoint")

    def stop_now(self) -> None:
        """The supervisor said stop: the next checkpoint raises (the row poll agrees later)."""
        self._stop_requested = True
        self._resumed.set()
        self._flag = True

    def _apply_status(self, status: JobState | str, stop_requested_at: float | None) -> None:
        # a stop is final: a row read from before the supervisor's word must not undo it
        stop = self._stop_requested or status in (JobState.STOPPING, JobState.CANCELLED)
        stop = stop or stop_requested_at is not None
        paused = status == JobState.PAUSED
        self._stop_requested = stop
        self._paused = paused
        if paused:
            self._resumed.clear()
        else:
            self._resumed.set()
        self._flag = stop or paused

    # ---------------------------------------------------------------- background thread

    def _connect(self) -> None:
        try:
            while self._store is None:
                try:
                    self._store = self._open_store()
                except Exception as exc:  # e.g. a database path that cannot be made: say why
                    self._outage.failed(exc, len(self._queue))
                    if self._closed.wait(1.0):
                        return
        finally:
            self._store_ready.set()  # opened, or given up (then ``_store`` stays None)

    def _run(self) -> None:
        self._connect()
        store = self._store
        if store is None:
            return  # closed before the database opened
        next_flush = 0.0
        outage = self._outage
        while not self._closed.wait(POLL_INTERVAL if not outage.failing else outage.delay):
            began = time.monotonic()
            try:
                ctl = store.control(self.id)
                if ctl is None or ctl[1] != self.attempt:
                    self._apply_status(JobState.CANCELLED, time.time())
                else:
                    self._apply_status(ctl[0], ctl[2])
                now = time.monotonic()
                if now >= next_flush or self._flag or outage.failing:
                    self.flush()
                    next_flush = now + FLUSH_INTERVAL
                    outage.succeeded()
            except Exception as exc:  # an outage: keep everything, back off, say it sparingly
                outage.failed(exc, len(self._queue), time.monotonic() - began)

    def flush(self) -> None:
        """Write everything queued so far (called by the thread, and at exit).

        A stop that comes while the database is still opening returns at once, so a job
        that flushes first thing still reaches its next checkpoint: what is queued goes out
        when the job ends.
        """
        deadline = time.monotonic() + STORE_WAIT
        while not self._store_ready.wait(STOP_LOOK):
            if self._stop_requested:
                return
            if time.monotonic() >= deadline:
                break
        if self._store is None:
            raise RuntimeError("the job database could not be opened; reports are queued")
        with self._flush_lock:
            while self._queue or self._latest:
                batch: list[EventItem] = []
                while self._queue and len(batch) < MAX_BATCH:
                    batch.append(self._queue.popleft())
                with self._latest_lock:
                    latest, self._latest = self._latest, {}
                try:
                    self._store.append_events(self.id, self.attempt, batch, latest)
                except Exception:
                    # put it back in order and let the next tick retry: never drop events
                    self._queue.extendleft(reversed(batch))
                    with self._latest_lock:
                        for k, v in latest.items():
                            if k == "metrics":
                                self._latest.setdefault("metrics", {}).update(
                                    {**v, **self._latest.get("metrics", {})}
                                )
                            else:
                                self._latest.setdefault(k, v)
                    raise

    def close(self) -> None:
        """Stop the reporter, write what is queued, release the database connections.

        While the store is still opening (the job ended in its first instant: a stop, a
        quick job), what is queued goes to the supervisor instead: no wait for SQLAlchemy.
        """
        self._closed.set()
        if not self._store_ready.is_set() and self._hand_over():
            return
        self._thread.join(timeout=5)
        if not self._store_ready.wait(STORE_WAIT) or self._store is None:
            print("[jobctl] the job database never opened: reports are lost", file=sys.__stderr__)
            return
        try:
            self._write_at_exit(self._store)
        finally:
            # close the pooled connections cleanly now rather than at interpreter shutdown
            # (what made the worker's exit slow was the collector: see worker._freeze_own_heap)
            self._store.close()

    def _write_at_exit(self, store: Store) -> None:
        """Write what is queued (and the tail of a truncated log). Through an outage the
        supervisor takes the reports over the handshake pair and writes them when the
        database is back, so the worker exits (releasing its memory, its GPU); without a pair
        the worker waits for the database up to ``EXIT_PATIENCE``."""
        deadline = time.monotonic() + EXIT_PATIENCE
        while True:
            try:
                self.flush()
                store.flush_log_tail(self.id, self.attempt)
                self._outage.succeeded()
                return
            except Exception as exc:
                delay = self._outage.failed(exc, len(self._queue))
                if self._hand_over():  # the supervisor writes them when it can
                    return
                if time.monotonic() + delay > deadline:
                    _say(f"[jobctl] job runtime: {len(self._queue)} report(s) could not be stored")
                    return
                time.sleep(delay)

    def _hand_over(self) -> bool:
        """Send what is queued to the supervisor over the handshake pair; False if it cannot
        (no pair, or the supervisor is gone): the caller then writes through the store."""
        if self.channel is None:
            return False
        with self._flush_lock:
            while self._queue or self._latest:
                batch: list[EventItem] = []
                while self._queue and len(batch) < MAX_BATCH:
                    batch.append(self._queue.popleft())
                with self._latest_lock:
                    latest, self._latest = self._latest, {}
                try:
                    self.channel.send_events([list(item) for item in batch], latest)
                except OSError:
                    self._queue.extendleft(reversed(batch))
                    with self._latest_lock:
                        self._latest = {**latest, **self._latest}
                    return False
        self.handed_over = True
        return True


def _say(message: str) -> None:
    # the worker's stderr: the supervisor stores it in the job's log
    try:
        print(message, file=sys.__stderr__, flush=True)
    except (OSError, ValueError, AttributeError):  # no stderr, or it is gone
        pass


class _StandIn:
    """What :func:`current` returns outside a worker: the same API, doing nothing."""

    id = None
    attempt = 0

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}

    def log(self, *parts: Any, stream: str = "stdout") -> None:
        print(*parts)

    def metric(self, step: int | None = None, **values: Any) -> None:
        pass

    def set_progress(
        self, done: float, total: float | None = None, unit: str = "it", checkpoint: bool = True
    ) -> None:
        pass

    def event(self, type_: EventType | str, data: dict[str, Any], **latest: Any) -> None:
        pass

    def progress(
        self, iterable: Iterable[T], total: float | None = None, unit: str = "it"
    ) -> Iterator[T]:
        return iter(iterable)

    def should_stop(self) -> bool:
        return False

    def checkpoint(self, label: str | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


_current: Job | None = None
_standin = _StandIn()


KERNEL_ENV = "JOBCTL_NOTEBOOK_KERNEL"  # set in a notebook job's kernel: attach on first use
CONFIG_ENV = "JOBCTL_JOB_CONFIG"  # that job's parameters, as its ``config``
STOP_FILE_ENV = "JOBCTL_STOP_FILE"  # made by the worker when the stop comes (see below)
STOP_FILE_POLL = 0.01


def current() -> Job | _StandIn:
    """The running job inside a worker (and inside a notebook job's kernel); a do-nothing
    stand-in anywhere else."""
    if _current is not None:
        return _current
    if os.environ.get(KERNEL_ENV):
        return _attach_from_env()
    return _standin


def kernel_env(
    attempt: int, config: dict[str, Any], stop_file: str | None = None
) -> dict[str, str]:
    """What a notebook job's kernel needs in its environment for :func:`current` (the job's
    id and database are there already, inherited from its worker)."""
    import json

    env = {KERNEL_ENV: "1", "JOBCTL_ATTEMPT": str(attempt), CONFIG_ENV: json.dumps(config)}
    if stop_file:
        env[STOP_FILE_ENV] = stop_file
    return env


def _watch_stop_file(job: Job, path: str) -> None:
    """The worker hears of a stop at once (its supervisor's socket) and makes this file; the
    kernel sees it within 10 ms, not at its next database poll (which waits its turn behind
    the writers of a busy job: 0.2-1 s seen here)."""
    while not job._closed.is_set():
        if os.path.exists(path):
            job.stop_now()
            return
        time.sleep(STOP_FILE_POLL)


def _attach_from_env() -> Job:
    """In a notebook job's kernel: report straight to the database (no supervisor pair:
    stops are seen by the row poll), and write what is queued when the kernel exits."""
    import atexit
    import json

    env = os.environ
    job = attach(
        env["JOBCTL_JOB_ID"],
        int(env.get("JOBCTL_ATTEMPT", "1")),
        env["JOBCTL_DB_URL"],
        json.loads(env.get(CONFIG_ENV) or "{}"),
    )
    if env.get(STOP_FILE_ENV):
        watcher = threading.Thread(
            target=_watch_stop_file, args=(job, env[STOP_FILE_ENV]), daemon=True
        )
        watcher.start()
    _brief_cancelled_traceback()
    atexit.register(detach)
    return job


def _brief_cancelled_traceback() -> None:
    """In IPython, a stop's ``Cancelled`` shows one line, not a formatted traceback: the
    formatting (source context of every frame) took 150-200 ms of every stopped notebook.
    IPython is looked up, never imported: the runtime imports no Jupyter code."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or not hasattr(shell, "set_custom_exc"):
        return

    def brief(_shell: Any, etype: type, value: BaseException, _tb: Any, tb_offset: Any = None):
        return [f"{etype.__name__}: {value}"]

    shell.set_custom_exc((Cancelled,), brief)


def attach(
    job_id: str,
    attempt: int,
    db_url: str,
    config: dict[str, Any],
    opened: Callable[[], None] | None = None,
    end: socket.socket | None = None,
) -> Job:
    """Called once by the worker: start the reporter thread (which opens the store, then
    calls ``opened``) and, given the worker's end of the handshake pair, its reader."""
    global _current

    def open_store() -> Store:
        from jupyter_jobctl.db.store import Store

        store = Store(db_url)
        if opened is not None:
            opened()
        return store

    _current = Job(job_id, attempt, config, open_store, end)
    return _current


def detach() -> None:
    global _current
    if _current is not None:
        _current.close()
        _current = None


def in_worker() -> bool:
    return _current is not None or bool(os.environ.get("JOBCTL_JOB_ID"))
