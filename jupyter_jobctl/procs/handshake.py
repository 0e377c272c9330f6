"""The start handshake between a supervisor and its Python worker (one socket pair).

The worker sends READY once its runtime is attached and the job's code is next; the
supervisor marks the job ``running`` and answers GO, or STOP when a stop came first. So
``running`` means the job's code is about to run, and the worker needs no database (nor
SQLAlchemy's import) to get there. The job's code starts after GO alone: a stop before GO
ends the worker at once (the supervisor kills it; only jobctl's start-up ran in it).
The pair stays open for the worker's life. After GO the supervisor says STOP on it: the
runtime reads the pair in a thread from the moment it attaches, so the stop flag is set
at once, without waiting for the job's database connection (which the worker
opens in the background: SQLAlchemy's import alone takes ~200 ms). When the worker ends
before that connection is open, it hands what the job reported meanwhile to the supervisor
over the pair (EVENTS frames: ``b"e"``, an 8-byte length, JSON ``{"events", "latest"}``)
and the supervisor writes it: a job stopped in its first instant needs no database itself.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from jupyter_jobctl.core.states import JobKind, JobState

FD_ENV = "JOBCTL_HANDSHAKE_FD"  # the worker's end of the pair, inherited
PLAN_ENV = "JOBCTL_LAUNCH"  # {"kind", "spec"} as JSON, so no database read before READY
MAX_PLAN = 100_000  # env strings are capped by the kernel; a bigger plan is read from the DB
READY, GO, STOP, EVENTS = b"r", b"g", b"s", b"e"
EVENTS_HEADER = 9  # EVENTS and the payload's length (8 bytes, big-endian)
RUNNABLE = (JobState.RUNNING, JobState.PAUSED)  # statuses in which the job's code may start


def plan_env(kind: JobKind | str, spec: Any, name: str | None = None) -> dict[str, str]:
    """The job's plan as an environment entry for the next process (empty if too big)."""
    text = json.dumps({"kind": str(kind), "spec": spec, "name": name})
    return {PLAN_ENV: text} if len(text) < MAX_PLAN else {}


def worker_end() -> socket.socket | None:
    """The worker's end, taken out of the environment (the job's children never see it);
    None when it was started without one. One that cannot be used is an error: the job's
    code must never start without its supervisor's GO (a stop before it ends the worker)."""
    raw = os.environ.pop(FD_ENV, None)
    if raw is None:
        return None
    try:
        os.set_inheritable(int(raw), False)  # nor do the job's own children inherit it
        return socket.socket(fileno=int(raw))
    except (OSError, ValueError) as exc:
        raise OSError(f"the supervisor's handshake socket ({raw!r}) is unusable: {exc}") from exc


class WorkerEnd:
    """The worker's end of the pair, read by a thread from the moment the runtime attaches:
    a STOP (before READY, or any time after GO) calls ``on_stop`` at once."""

    def __init__(self, end: socket.socket, on_stop: Callable[[], None]) -> None:
        self.end = end
        self.stopped = False
        self._on_stop = on_stop
        self._go = False
        self._answered = threading.Event()
        self._send = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="jobctl-stop-listener", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while data := self.end.recv(64):
                self._go = self._go or GO in data
                if STOP in data and not self.stopped:
                    self.stopped = True
                    self._on_stop()
                self._answered.set()
        except OSError:
            pass
        self._answered.set()  # the supervisor is gone: never go

    def ready(self) -> bool:
        """Say READY and wait for the answer: True to go, False to stop (STOP came, before
        or after READY, or the supervisor is gone)."""
        if not self.stopped:
            try:
                with self._send:
                    self.end.sendall(READY)
            except OSError:
                return False
            self._answered.wait()
        return self._go and not self.stopped

    def send_events(self, events: list[Any], latest: dict[str, Any]) -> None:
        with self._send:
            send_events(self.end, events, latest)


def answer(end: socket.socket, status: str) -> None:
    """Supervisor side: ``status`` is the job's after marking it running."""
    end.sendall(GO if status in RUNNABLE else STOP)


def send_events(end: socket.socket, events: list[Any], latest: dict[str, Any]) -> None:
    """Worker side: hand reported events (``[type, data]`` pairs) and latest-field updates to
    the supervisor, which writes them (used when the worker's own store never opened)."""
    payload = json.dumps({"events": events, "latest": latest}, default=str).encode()
    end.sendall(EVENTS + len(payload).to_bytes(8, "big") + payload)


class Inbox:
    """Supervisor side: what the worker said, from the bytes read so far.

    ``feed`` returns complete messages in order: ``READY``, or ``(events, latest)`` for an
    EVENTS frame. Bytes it does not know are skipped.
    """

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        out: list[Any] = []
        while self._buf:
            kind = self._buf[:1]
            if kind == EVENTS:
                if len(self._buf) < EVENTS_HEADER:
                    break
                size = int.from_bytes(self._buf[1:EVENTS_HEADER], "big")
                if len(self._buf) < EVENTS_HEADER + size:
                    break
                body = json.loads(self._buf[EVENTS_HEADER : EVENTS_HEADER + size])
                self._buf = self._buf[EVENTS_HEADER + size :]
                events = [(str(t), d) for t, d in body.get("events", [])]
                out.append((events, dict(body.get("latest") or {})))
            else:
                self._buf = self._buf[1:]
                if kind == READY:
                    out.append(READY)
        return out
