"""Riding out a database outage: retry delays and messages that do not flood (pure Python).

A job's writers (its supervisor, the runtime inside its worker) keep the job's events in a
bounded buffer while the database is away (PostgreSQL restarting, a SQLite file locked by
another process, a full disk) and retry with exponential backoff. :class:`Outage` is the
bookkeeping of one writer: when to try next, and what to say -- once when writes start
failing, at most every ``every`` seconds while they keep failing, once when they work again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

FIRST_DELAY = 0.05  # seconds before the first retry
MAX_DELAY = 2.0  # the backoff's ceiling: the database is looked at least this often
SAY_EVERY = 10.0  # seconds between "still unavailable" messages


class Outage:
    """One writer's view of the database: failing or not, since when, the next retry."""

    def __init__(
        self,
        who: str,
        say: Callable[[str], None],
        *,
        first: float = FIRST_DELAY,
        most: float = MAX_DELAY,
        every: float = SAY_EVERY,
    ) -> None:
        self.who = who
        self.say = say
        self.first, self.most, self.every = first, most, every
        self.since: float | None = None  # monotonic time of the first failure of this outage
        self.failures = 0
        self.delay = first
        self.last_error = ""
        self._next_try = 0.0
        self._said_at = 0.0

    @property
    def failing(self) -> bool:
        return self.since is not None

    def due(self) -> bool:
        """Whether a database call may be tried now (False while backing off)."""
        return self.since is None or time.monotonic() >= self._next_try

    def failed(self, exc: BaseException, kept: int | None = None, took: float = 0.0) -> float:
        """A call failed (after ``took`` seconds: a lock is waited for): back off (returns
        the delay before the next try), maybe say so."""
        now = time.monotonic()
        self.last_error = str(exc).rstrip(".") or type(exc).__name__
        held = f"; {kept} event(s) kept in memory" if kept else ""
        if self.since is None:
            self.since, self.failures, self.delay = now - took, 1, self.first
            self._said_at = now
            self.say(
                f"[jobctl] {self.who}: the job database is unavailable ({self.last_error}){held};"
                " retrying"
            )
        else:
            self.failures += 1
            self.delay = min(self.delay * 2, self.most)
            if now - self._said_at >= self.every:
                self._said_at = now
                self.say(
                    f"[jobctl] {self.who}: the job database is still unavailable after "
                    f"{now - self.since:.0f} s, {self.failures} attempts ({self.last_error})"
                    f"{held}; retrying"
                )
        self._next_try = now + self.delay
        return self.delay

    def succeeded(self) -> float | None:
        """A call worked: the seconds the outage lasted if one just ended (said), else None."""
        if self.since is None:
            return None
        lasted = time.monotonic() - self.since
        self.say(
            f"[jobctl] {self.who}: the job database is back after {lasted:.1f} s "
            f"({self.failures} failed attempts); nothing was lost"
        )
        self.since, self.failures, self.delay = None, 0, self.first
        return lasted
