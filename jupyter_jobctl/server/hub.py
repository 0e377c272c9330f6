"""The hub that tails the database for the streams, and the per-job tail it shares.

Workers write their events straight to the database, so the server learns about them by
tailing: :class:`EventHub` asks the manager every ``poll_interval`` which job rows changed,
reads the new events of every job somebody watches once, turns them into WebSocket frames
once (:func:`~jupyter_jobctl.server.frames.event_frames`), and keeps the newest of them in
a per-job :class:`Tail` that all of that job's sockets share. The sockets
(:mod:`~jupyter_jobctl.server.stream`) each keep their own cursor into it; ``/stream``
clients get every job's changes through a :class:`ListClient` queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from jupyter_jobctl.core.errors import JobNotFound
from jupyter_jobctl.server.frames import event_frames
from jupyter_jobctl.server.handlers import run_in_db_pool

if TYPE_CHECKING:
    from jupyter_jobctl.engine.manager import JobManager

log = logging.getLogger("jupyter_jobctl")

TAIL_BYTES = 1 << 20  # newest frames kept per watched job, shared by its sockets
TAIL_FETCH = 2000  # events the hub reads per job per look
CHANGE_WINDOW = 2.0  # re-read rows this recent: commits may land slightly out of time order
LIST_QUEUE = 2000  # per /stream client; beyond this the client is too slow (1013)


class Tail:
    """The newest frames of one watched job: a contiguous run of seqs ``first..last``."""

    __slots__ = ("first", "frames", "size", "sockets")

    def __init__(self, last_seq: int) -> None:
        self.first = last_seq + 1  # seq of frames[0]
        self.frames: list[bytes] = []
        self.size = 0
        self.sockets: set[asyncio.Event] = set()

    @property
    def last(self) -> int:
        return self.first + len(self.frames) - 1

    def extend(self, frames: list[bytes]) -> None:
        self.frames.extend(frames)
        self.size += sum(len(f) for f in frames)
        if self.size > TAIL_BYTES:  # forget the oldest; sockets behind them read the database
            drop, freed = 0, 0
            while self.size - freed > TAIL_BYTES // 2:
                freed += len(self.frames[drop])
                drop += 1
            del self.frames[:drop]
            self.first += drop
            self.size -= freed

    def after(self, seq: int, limit: int) -> list[bytes] | None:
        """Frames after ``seq`` (maybe none yet), or None if ``seq`` is behind the window."""
        if seq < self.first - 1:
            return None
        start = seq + 1 - self.first
        return self.frames[start : start + limit]


class ListClient:
    """The queue of one ``/stream`` socket: job summaries the hub pushes, bounded."""

    def __init__(self) -> None:
        self.queue: deque[dict[str, Any]] = deque()
        self.ready = asyncio.Event()
        self.overflow = False

    def push(self, message: dict[str, Any]) -> None:
        if len(self.queue) >= LIST_QUEUE:
            self.overflow = True
        else:
            self.queue.append(message)
        self.ready.set()


class EventHub:
    """Tails job changes from the database, reads watched jobs' new events once, wakes sockets."""

    def __init__(
        self,
        manager: JobManager,
        settings: dict[str, Any],
        poll_interval: float = 0.025,
        *,
        listen: bool = True,
        listen_poll_interval: float = 0.5,
    ) -> None:
        self.manager = manager
        self.settings = settings
        self.poll_interval = poll_interval
        # PostgreSQL: NOTIFY wakes the loop when any process changes a job, so the poll is
        # only the fallback and runs this much less often (SQLite: no push, the poll it is)
        self.listen = listen
        self.listen_poll_interval = max(poll_interval, listen_poll_interval)
        self._listener: Any = None
        self._looked_at = 0.0  # loop time the last look at the database began
        self._wake_pending = False  # a NOTIFY's look is scheduled already
        # the newest row of recently changed or watched jobs (forgotten when neither)
        self.latest: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, tuple[int, str, float]] = {}  # (last_seq, status, updated_at)
        self.tails: dict[str, Tail] = {}
        self._lists: set[ListClient] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.replays = asyncio.Semaphore(settings.get("jobctl_max_replays", 8))
        self._failing = False  # the tail query failed last time (an outage): log it once

    def ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        if self.listen and self._listener is None:
            loop = asyncio.get_running_loop()

            def changed(_job_id: str | None) -> None:  # the listener's thread
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(self._notified)

            self._listener = self.manager.listen(changed) or False

    def _notified(self) -> None:
        """A NOTIFY: look now, or, when the last look began less than ``poll_interval`` ago,
        then. Busy jobs send thousands a second; the push must cost the database no more
        looks than the poll did, while a change after a quiet spell is seen at once."""
        if self._wake_pending:
            return
        loop = asyncio.get_running_loop()
        wait = self._looked_at + self.poll_interval - loop.time()
        if wait <= 0:
            self._wake.set()
            return
        self._wake_pending = True

        def wake() -> None:
            self._wake_pending = False
            self._wake.set()

        loop.call_later(wait, wake)

    def _interval(self) -> float:
        listener = self._listener
        return (
            self.listen_poll_interval
            if listener and listener.connected.is_set()
            else self.poll_interval
        )

    async def stop(self) -> None:
        if self._listener:
            self._listener.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def poke(self) -> None:
        """Look now (after this server changed a job itself)."""
        self._wake.set()

    # -- subscriptions

    def watch(self, job_id: str, last_seq: int) -> tuple[Tail, asyncio.Event]:
        """Follow a job whose events up to ``last_seq`` the caller reads itself."""
        self.ensure_started()
        tail = self.tails.get(job_id)
        if tail is None:
            tail = self.tails[job_id] = Tail(last_seq)
            self._wake.set()  # the job may have moved on since the caller's snapshot
        event = asyncio.Event()
        tail.sockets.add(event)
        return tail, event

    def unwatch(self, job_id: str, event: asyncio.Event) -> None:
        tail = self.tails.get(job_id)
        if tail is not None:
            tail.sockets.discard(event)
            if not tail.sockets:
                del self.tails[job_id]
                if job_id not in self._seen:
                    self.latest.pop(job_id, None)

    def add_list_client(self, client: ListClient) -> None:
        self.ensure_started()
        self._lists.add(client)

    def remove_list_client(self, client: ListClient) -> None:
        self._lists.discard(client)

    def deleted(self, job_id: str) -> None:
        self.latest.pop(job_id, None)
        self._seen.pop(job_id, None)
        tail = self.tails.get(job_id)
        for event in tail.sockets if tail else ():
            event.set()
        for client in list(self._lists):
            client.push({"type": "deleted", "id": job_id})

    # -- the tail loop

    async def _run(self) -> None:
        since = time.time() - CHANGE_WINDOW
        loop = asyncio.get_running_loop()
        while True:
            self._looked_at = loop.time()
            try:
                rows = await run_in_db_pool(
                    self.settings, self.manager.changed_since, since - CHANGE_WINDOW
                )
            except Exception as exc:  # the database may be briefly unavailable; try again
                if not self._failing:  # once per outage, not every poll_interval
                    log.warning("jobctl: tailing the job database failed (retrying): %s", exc)
                self._failing = True
                rows = []
                await asyncio.sleep(min(1.0, 10 * self.poll_interval))
            else:
                if self._failing:
                    log.warning("jobctl: tailing the job database works again")
                self._failing = False
            changed = set()
            for updated_at, job in rows:
                since = max(since, updated_at)
                key = (job["last_seq"], job["status"], updated_at)
                if self._seen.get(job["id"]) == key:
                    continue
                self._seen[job["id"]] = key
                self.latest[job["id"]] = job
                changed.add(job["id"])
                for client in list(self._lists):
                    client.push({"type": "job", "job": job})
            behind = await self._read_tails()
            for job_id in changed | behind:
                tail = self.tails.get(job_id)
                for event in tail.sockets if tail else ():
                    event.set()
            self._forget(since - 2 * CHANGE_WINDOW)
            self._wake.clear()
            if any(self._behind(job_id) for job_id in behind):
                await asyncio.sleep(0)  # more to read right away; let the loop breathe first
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval())

    def _behind(self, job_id: str) -> bool:
        tail, row = self.tails.get(job_id), self.latest.get(job_id)
        return tail is not None and row is not None and row["last_seq"] > tail.last

    async def _read_tails(self) -> set[str]:
        """Read the new events of every watched job that has some; returns those jobs."""
        wanted = [(j, t.last) for j, t in self.tails.items() if self._behind(j)]
        if not wanted:
            return set()
        try:
            pages = await run_in_db_pool(self.settings, self._fetch, wanted)
        except Exception as exc:
            if not self._failing:
                log.warning("jobctl: reading new events failed: %s", exc)
            return set()
        read = set()
        for job_id, after, frames in pages:
            tail = self.tails.get(job_id)
            if tail is not None and tail.last == after and frames:  # else it changed meanwhile
                tail.extend(frames)
                read.add(job_id)
        return read

    def _fetch(self, wanted: list[tuple[str, int]]) -> list[tuple[str, int, list[bytes]]]:
        pages = []
        for job_id, after in wanted:
            with contextlib.suppress(JobNotFound):
                rows = self.manager.events_raw(job_id, after, TAIL_FETCH)
                pages.append((job_id, after, event_frames(job_id, rows)))
        return pages

    def _forget(self, cutoff: float) -> None:
        """Drop rows that left the re-read window, unless somebody watches their job."""
        for job_id in [j for j, k in self._seen.items() if k[2] < cutoff]:
            del self._seen[job_id]
            if job_id not in self.tails:
                self.latest.pop(job_id, None)
