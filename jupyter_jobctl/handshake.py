"""The start handshake between a supervisor and its Python worker (one socket pair).

The worker sends READY once its runtime is attached and the job's code is next; the
supervisor marks the job ``running`` and answers GO, or STOP when a stop came first. So
``running`` means the job's code is about to run, a stop during start-up still wins before
any of it ran, and the worker needs no database (nor SQLAlchemy's import) to get there.
"""

from __future__ import annotations

import os
import socket

FD_ENV = "JOBCTL_HANDSHAKE_FD"  # the worker's end of the pair, inherited
PLAN_ENV = "JOBCTL_LAUNCH"  # {"kind", "spec"} as JSON, so no database read before READY
READY, GO, STOP = b"r", b"g", b"s"
RUNNABLE = ("running", "paused")  # statuses in which the job's code may start


def worker_end() -> socket.socket | None:
    """The worker's end, taken out of the environment (the job's children never see it)."""
    raw = os.environ.pop(FD_ENV, None)
    if raw is None or not raw.isdigit():
        return None
    try:
        return socket.socket(fileno=int(raw))
    except OSError:
        return None


def ready(end: socket.socket) -> bool:
    """Say READY and wait for the answer: True to go, False to stop (or no supervisor)."""
    with end:
        try:
            end.sendall(READY)
            return end.recv(1) == GO
        except OSError:
            return False


def answer(end: socket.socket, status: str) -> None:
    """Supervisor side: ``status`` is the job's after marking it running."""
    end.sendall(GO if status in RUNNABLE else STOP)
