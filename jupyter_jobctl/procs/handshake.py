"""The start handshake between a supervisor and its Python worker (one socket pair).

The worker sends READY once its runtime is attached and the job's code is next; the
supervisor marks the job ``running`` and answers GO, or STOP when a stop came first. So
``running`` means the job's code is about to run, a stop during start-up still wins before
any of it ran, and the worker needs no database (nor SQLAlchemy's import) to get there.
After GO the pair stays open: when the job is stopped the supervisor sends STOP, which sets
the runtime's stop flag at once (its own poll of the job row is the fallback).
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from jupyter_jobctl.core.states import JobKind, JobState

FD_ENV = "JOBCTL_HANDSHAKE_FD"  # the worker's end of the pair, inherited
PLAN_ENV = "JOBCTL_LAUNCH"  # {"kind", "spec"} as JSON, so no database read before READY
MAX_PLAN = 100_000  # env strings are capped by the kernel; a bigger plan is read from the DB
READY, GO, STOP = b"r", b"g", b"s"
RUNNABLE = (JobState.RUNNING, JobState.PAUSED)  # statuses in which the job's code may start


def plan_env(kind: JobKind | str, spec: Any) -> dict[str, str]:
    """The job's plan as an environment entry for the next process (empty if too big)."""
    text = json.dumps({"kind": str(kind), "spec": spec})
    return {PLAN_ENV: text} if len(text) < MAX_PLAN else {}


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
    """Say READY and wait for the answer: True to go (``end`` then stays open: the
    supervisor sends STOP on it when the job is stopped), False to stop (``end`` closed)."""
    try:
        end.sendall(READY)
        if end.recv(1) == GO:
            return True
    except OSError:
        pass
    end.close()
    return False


def wait_for_stop(end: socket.socket) -> bool:
    """Block until the supervisor says STOP (True) or goes away (False)."""
    with end:
        try:
            while said := end.recv(1):
                if said == STOP:
                    return True
        except OSError:
            pass
    return False


def answer(end: socket.socket, status: str) -> None:
    """Supervisor side: ``status`` is the job's after marking it running."""
    end.sendall(GO if status in RUNNABLE else STOP)
