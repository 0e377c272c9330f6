"""WebSocket streams (DESIGN §6) and the hub that tails the database for them.

Workers write their events straight to the database, so the server learns about them by
tailing: :class:`EventHub` asks the manager every ``poll_interval`` which job rows changed,
reads the new events of every job somebody watches once, turns them into WebSocket frames
once, and keeps the newest of them in a per-job :class:`_Tail` that all of that job's
sockets share. Each job socket keeps one cursor (``last_sent``) and only ever sends
``seq > last_sent`` -- from the shared tail when its cursor is inside it, otherwise from
the database -- so delivery is in order and exactly once by construction, across
reconnects and server restarts alike.

Frames are written to the socket in slices with one ``IOStream.write`` (see
:meth:`_StreamBase.write_frames`): one ``write_message`` per event costs ~8 µs of the event loop,
a slice ~0.5 µs per event (measured on this machine), which is what lets one server
core feed dozens of clients of busy jobs and still answer ``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web, websocket
from tornado.iostream import StreamClosedError

from jupyter_jobctl.core.errors import JobNotFound, SpecError
from jupyter_jobctl.core.states import TERMINAL
from jupyter_jobctl.core.timestamps import iso
from jupyter_jobctl.server.handlers import AUTH_RESOURCE, MAX_INT, ErrorMixin, run_in_db_pool

log = logging.getLogger("jupyter_jobctl")

PAGE = 500  # events read from the database at once
SLICE = 500  # frames written to a socket at once (one syscall)
TAIL_BYTES = 1 << 20  # newest frames kept per watched job, shared by its sockets
TAIL_FETCH = 2000  # events the hub reads per job per look
HEARTBEAT = 10.0  # seconds of silence before a heartbeat frame
FALLBACK_POLL = 1.0  # a job socket re-reads the log this often even without a wake-up
SEND_TIMEOUT = 10.0  # a client that does not take a slice in this long is closed (1013)
CHANGE_WINDOW = 2.0  # re-read rows this recent: commits may land slightly out of time order
LIST_QUEUE = 2000  # per /stream client; beyond this the client is too slow (1013)


class _SlowConsumer(Exception):
    pass


# ---------------------------------------------------------------------------- frames


def text_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed, final WebSocket text frame (RFC 6455 §5.2)."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", 0x81, n) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def frame_payload(frame: bytes) -> bytes:
    size = frame[1] & 0x7F
    return frame[2 if size < 126 else 4 if size == 126 else 10 :]


_TYPES: dict[str, str] = {}  # event type -> its JSON string (a handful of distinct types)


def _type_json(type_: str) -> str:
    quoted = _TYPES.get(type_)
    if quoted is None:
        quoted = json.dumps(type_)
        if len(_TYPES) < 1000:  # types are few; a flood of odd ones must not grow this
            _TYPES[type_] = quoted
    return quoted


def event_frames(job_id: str, rows: Iterable[tuple[int, str, float, str]]) -> list[bytes]:
    """Frames of stored events; the stored data is JSON already: spliced, never re-encoded."""
    head = '{"type":"event","job":' + json.dumps(job_id) + ',"seq":'
    return [
        text_frame(
            f'{head}{seq},"event":{_type_json(type_)},"ts":"{iso(ts)}","data":{data}}}'.encode()
        )
        for seq, type_, ts, data in rows
    ]


class _Tail:
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


# ---------------------------------------------------------------------------- the hub


class EventHub:
    """Tails job changes from the database, reads watched jobs' new events once, wakes sockets."""

    def __init__(self, manager: Any, settings: dict[str, Any], poll_interval: float = 0.025):
        self.manager = manager
        self.settings = settings
        self.poll_interval = poll_interval
        # the newest row of recently changed or watched jobs (forgotten when neither)
        self.latest: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, tuple[Any, ...]] = {}
        self.tails: dict[str, _Tail] = {}
        self._lists: set[_ListClient] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.replays = asyncio.Semaphore(settings.get("jobctl_max_replays", 8))

    def ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def poke(self) -> None:
        """Look now (after this server changed a job itself)."""
        self._wake.set()

    # -- subscriptions

    def watch(self, job_id: str, last_seq: int) -> tuple[_Tail, asyncio.Event]:
        """Follow a job whose events up to ``last_seq`` the caller reads itself."""
        self.ensure_started()
        tail = self.tails.get(job_id)
        if tail is None:
            tail = self.tails[job_id] = _Tail(last_seq)
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

    def add_list_client(self, client: _ListClient) -> None:
        self.ensure_started()
        self._lists.add(client)

    def remove_list_client(self, client: _ListClient) -> None:
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
        while True:
            try:
                rows = await run_in_db_pool(
                    self.settings, self.manager.changed_since, since - CHANGE_WINDOW
                )
            except Exception:  # the database may be briefly unavailable; try again
                log.warning("jobctl: tail query failed", exc_info=True)
                rows = []
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
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

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
        except Exception:
            log.warning("jobctl: reading new events failed", exc_info=True)
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


# ---------------------------------------------------------------------------- sockets


class _StreamBase(
    ErrorMixin, ExtensionHandlerMixin, WebSocketMixin, websocket.WebSocketHandler, JupyterHandler
):  # type: ignore[misc]
    auth_resource = AUTH_RESOURCE

    def set_default_headers(self) -> None:
        pass  # as jupyter_server's kernel socket: no HTML security headers on a socket

    def get_compression_options(self) -> None:
        return None  # uncompressed frames: what :meth:`write_frames` writes directly

    @property
    def manager(self) -> Any:
        return self.settings["jobctl_manager"]

    @property
    def hub(self) -> EventHub:
        return self.settings["jobctl_hub"]

    @property
    def heartbeat(self) -> float:
        return float(self.settings.get("jobctl_heartbeat", HEARTBEAT))

    @property
    def send_timeout(self) -> float:
        return float(self.settings.get("jobctl_send_timeout", SEND_TIMEOUT))

    async def authorize_read(self) -> None:
        # await: an async Authorizer returns a coroutine, which is truthy if not awaited
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE)
        )
        if not allowed:
            raise web.HTTPError(403, "You are not authorised to read jobctl streams.")

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.write_frames([text_frame(json.dumps(message).encode())])

    async def write_frames(self, frames: list[bytes]) -> None:
        """Send frames with one write; a client that does not take them in time gets 1013."""
        if not frames:
            return
        conn = self.ws_connection
        if conn is None or conn.is_closing():
            raise websocket.WebSocketClosedError()
        stream = getattr(conn, "stream", None)
        try:
            if stream is not None and not getattr(conn, "_compressor", None):
                sent = stream.write(b"".join(frames))
            else:  # a tornado without the attributes this relies on: one message per frame
                for frame in frames[:-1]:
                    self.write_message(frame_payload(frame))
                sent = self.write_message(frame_payload(frames[-1]))
            # shield: a timed-out wait must not cancel tornado's own write future
            await asyncio.wait_for(asyncio.shield(sent), self.send_timeout)
        except asyncio.TimeoutError:
            raise _SlowConsumer() from None
        except StreamClosedError:
            raise websocket.WebSocketClosedError() from None

    def on_message(self, message: Any) -> None:
        pass  # the streams are server -> client only

    def close_slow(self) -> None:
        self.close(1013, "Client too slow; reconnect and resume from your last seq.")


class JobStreamHandler(_StreamBase):
    """WS /jobs/{id}/stream?after=SEQ: snapshot, backlog, live events, heartbeats, done."""

    _task: asyncio.Task[None] | None = None
    _wake: asyncio.Event | None = None

    @ws_authenticated
    async def get(self, job_id: str) -> None:
        await self.authorize_read()
        raw = self.get_query_argument("after", "0") or "0"
        if not raw.isdigit() or int(raw) > MAX_INT:
            raise SpecError("after", "after must be a non-negative integer (the last seq you saw).")
        self.after = int(raw)
        self.job_id = job_id
        self.job = await run_in_db_pool(self.settings, self.manager.get, job_id)  # 404 pre-upgrade
        await super().get(job_id)

    def open(self, job_id: str) -> None:  # type: ignore[override]
        super().open()
        self._task = asyncio.ensure_future(self._pump())

    def on_close(self) -> None:
        if self._wake is not None:
            self.hub.unwatch(self.job_id, self._wake)
        if self._task is not None:
            self._task.cancel()

    async def _from_database(self, last: int, tail: _Tail | None = None) -> int:
        """Send stored events after ``last`` in pages until none are left (or, given the
        shared tail, until the cursor is back inside it); returns the new last sent seq."""
        while tail is None or last < tail.first - 1:
            # pages are read and framed in a database thread, a few at once: readers of old
            # events (replays, clients slower than the job) must not starve the event loop
            async with self.hub.replays:
                frames, seq = await run_in_db_pool(self.settings, self._read_page, last)
            if not frames:
                return last
            await self.write_frames(frames)
            last = seq
            if len(frames) < PAGE:
                return last
        return last

    def _read_page(self, last: int) -> tuple[list[bytes], int]:
        rows = self.manager.events_raw(self.job_id, last, PAGE)
        return event_frames(self.job_id, rows), rows[-1][0] if rows else last

    async def _send_new(self, last: int, tail: _Tail) -> int:
        """Everything after ``last``: from the shared tail, or the database when behind it."""
        while True:
            frames = tail.after(last, SLICE)
            if frames is None:
                moved = await self._from_database(last, tail)
                if moved == last:
                    return last
                last = moved
                continue
            if not frames:
                return last
            await self.write_frames(frames)
            last += len(frames)

    async def _pump(self) -> None:
        try:
            job = self.job
            last = self.after
            if last > job["last_seq"]:
                await self.send_json(
                    {"type": "reset", "reason": "after is beyond the job's last seq"}
                )
                job = await run_in_db_pool(self.settings, self.manager.get, self.job_id)
                last = 0
            await self.send_json({"type": "snapshot", "job": job, "last_seq": job["last_seq"]})
            tail, self._wake = self.hub.watch(self.job_id, job["last_seq"])
            last = await self._from_database(last, tail)  # the backlog
            quiet_since = time.monotonic()
            while True:
                self._wake.clear()
                sent = await self._send_new(last, tail)
                if sent != last:
                    quiet_since = time.monotonic()
                last = sent
                latest = self.hub.latest.get(self.job_id) or job
                if latest["status"] in TERMINAL and await self._send_done_if_over(last):
                    return
                woken = await _wait(self._wake, FALLBACK_POLL)
                if not woken:  # no word from the hub for a while: look for ourselves
                    sent = await self._from_database(last)
                    if sent != last:
                        quiet_since = time.monotonic()
                    last = sent
                if time.monotonic() - quiet_since >= self.heartbeat:
                    await self.send_json({"type": "heartbeat", "last_seq": last})
                    quiet_since = time.monotonic()
        except _SlowConsumer:
            self.close_slow()
        except JobNotFound:
            self.close(4404, "The job was deleted.")
        except (websocket.WebSocketClosedError, asyncio.CancelledError):
            pass

    async def _send_done_if_over(self, last: int) -> bool:
        """Send ``done`` and close if the terminal job's backlog is all sent."""
        fresh = await run_in_db_pool(self.settings, self.manager.get, self.job_id)
        if fresh["last_seq"] > last:
            return False
        await self.send_json({"type": "done", "status": fresh["status"], "last_seq": last})
        self.close(1000)
        return True


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), timeout)
        return True
    return False


class _ListClient:
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


class ListStreamHandler(_StreamBase):
    """WS /stream: summary changes of every job (created, status, progress, counts, deleted)."""

    _task: asyncio.Task[None] | None = None

    @ws_authenticated
    async def get(self) -> None:
        await self.authorize_read()
        await super().get()

    def open(self) -> None:  # type: ignore[override]
        super().open()
        self.client = _ListClient()
        self.hub.add_list_client(self.client)
        self._task = asyncio.ensure_future(self._pump())

    def on_close(self) -> None:
        self.hub.remove_list_client(self.client)
        if self._task is not None:
            self._task.cancel()

    async def _pump(self) -> None:
        try:
            while True:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.client.ready.wait(), self.heartbeat)
                self.client.ready.clear()
                if self.client.overflow:
                    self.close_slow()
                    return
                if not self.client.queue:
                    await self.send_json({"type": "heartbeat"})
                while self.client.queue:
                    await self.send_json(self.client.queue.popleft())
        except _SlowConsumer:
            self.close_slow()
        except (websocket.WebSocketClosedError, asyncio.CancelledError):
            pass


WS_ROUTES: list[tuple[str, type[Any]]] = [
    ("/jobs/{job_id}/stream", JobStreamHandler),
    ("/stream", ListStreamHandler),
]
