"""WebSocket streams (docs/api.md): one job's events, and every job's summary changes.

The server learns about events by tailing the database (:class:`~.hub.EventHub`), which
keeps the newest frames of each watched job in a shared :class:`~.hub.Tail`. Each job
socket keeps one cursor (``last_sent``) and only ever sends ``seq > last_sent`` -- from the
shared tail when its cursor is inside it, otherwise from the database -- so delivery is in
order and exactly once by construction, across reconnects and server restarts alike.
Frames are pre-encoded and written in slices (:mod:`~.frames`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web, websocket

from jupyter_jobctl.core import jsonsafe
from jupyter_jobctl.core.errors import JobNotFound, SpecError
from jupyter_jobctl.core.states import TERMINAL
from jupyter_jobctl.server import frames as raw
from jupyter_jobctl.server.frames import SLICE, SlowConsumer, event_frames, text_frame
from jupyter_jobctl.server.handlers import AUTH_RESOURCE, MAX_INT, ErrorMixin, run_in_db_pool
from jupyter_jobctl.server.hub import EventHub, ListClient, Tail

if TYPE_CHECKING:
    from jupyter_jobctl.engine.manager import JobManager

__all__ = ["WS_ROUTES", "EventHub", "JobStreamHandler", "ListStreamHandler"]

PAGE = 500  # events read from the database at once
HEARTBEAT = 10.0  # seconds of silence before a heartbeat frame
FALLBACK_POLL = 1.0  # a job socket re-reads the log this often even without a wake-up
SEND_TIMEOUT = 10.0  # a client that does not take a slice in this long is closed (1013)


# ---------------------------------------------------------------------------- sockets


class _StreamBase(
    ErrorMixin, ExtensionHandlerMixin, WebSocketMixin, websocket.WebSocketHandler, JupyterHandler
):
    auth_resource = AUTH_RESOURCE

    def set_default_headers(self) -> None:
        pass  # as jupyter_server's kernel socket: no HTML security headers on a socket

    def get_compression_options(self) -> None:
        return None  # uncompressed frames: what :meth:`write_frames` writes directly

    @property
    def manager(self) -> JobManager:
        manager: JobManager = self.settings["jobctl_manager"]
        return manager

    @property
    def hub(self) -> EventHub:
        hub: EventHub = self.settings["jobctl_hub"]
        return hub

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
        await self.write_frames([text_frame(jsonsafe.dumps(message).encode())])

    async def write_frames(self, frames: list[bytes]) -> None:
        """Send frames with one write; a client that does not take them in time gets 1013."""
        await raw.write_frames(self, frames, self.send_timeout)

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

    def open(self, job_id: str) -> None:
        super().open()
        self._task = asyncio.ensure_future(self._pump())

    def on_close(self) -> None:
        if self._wake is not None:
            self.hub.unwatch(self.job_id, self._wake)
        if self._task is not None:
            self._task.cancel()

    async def _from_database(self, last: int, tail: Tail | None = None) -> int:
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

    async def _send_new(self, last: int, tail: Tail) -> int:
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
        except SlowConsumer:
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


class ListStreamHandler(_StreamBase):
    """WS /stream: summary changes of every job (created, status, progress, counts, deleted)."""

    _task: asyncio.Task[None] | None = None

    @ws_authenticated
    async def get(self) -> None:
        await self.authorize_read()
        await super().get()

    def open(self) -> None:
        super().open()
        self.client = ListClient()
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
        except SlowConsumer:
            self.close_slow()
        except (websocket.WebSocketClosedError, asyncio.CancelledError):
            pass


WS_ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    ("/jobs/{job_id}/stream", JobStreamHandler),
    ("/stream", ListStreamHandler),
]
