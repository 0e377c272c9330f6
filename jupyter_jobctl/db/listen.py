"""PostgreSQL LISTEN/NOTIFY: the wake-up that tells a server a job changed elsewhere.

Every transaction that changes a job (:meth:`Store._append`) sends ``NOTIFY jobctl_changes``
with the job's id, delivered when it commits. A :class:`ChangeListener` holds one dedicated
connection in ``LISTEN`` in a daemon thread and calls back for each notification, so a
server's stream hub reads a job's new events right away, whichever machine wrote them. The
notification carries no data: the hub still reads the database, and its tail poll stays
as the fallback for a listener that is reconnecting (or a notification lost with it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("jupyter_jobctl")

RECONNECT_MIN = 0.2  # seconds before the first reconnection, doubling up to RECONNECT_MAX
RECONNECT_MAX = 10.0
WAIT = 0.5  # seconds one wait for notifications lasts: how soon close() is noticed


class ChangeListener:
    """LISTENs on its own connection in a daemon thread; ``on_change(job_id)`` per
    notification, ``on_change(None)`` once (re)connected (anything may have changed)."""

    def __init__(self, connect: Callable[[], Any], on_change: Callable[[str | None], None]) -> None:
        self.connect = connect  # a new psycopg connection, LISTENing (Store.listening)
        self.on_change = on_change
        self.connected = threading.Event()  # LISTENing now
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobctl-listen", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = RECONNECT_MIN
        while not self._closing.is_set():
            try:
                with self.connect() as conn:
                    self.connected.set()
                    delay = RECONNECT_MIN
                    self.on_change(None)
                    while not self._closing.is_set():
                        for note in conn.notifies(timeout=WAIT):
                            self.on_change(note.payload or None)
            except Exception as exc:  # the database went away: the tail poll covers meanwhile
                if self._closing.is_set():
                    return
                if self.connected.is_set():
                    log.warning("jobctl: LISTEN connection lost (%s); reconnecting", exc)
                self.connected.clear()
                self._closing.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX)
            finally:
                self.connected.clear()

    def close(self) -> None:
        self._closing.set()
        self._thread.join(timeout=WAIT + 2)
