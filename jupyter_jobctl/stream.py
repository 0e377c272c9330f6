"""WebSocket streams (DESIGN §6) and the hub that tails the database for them.

Workers write their events straight to the database, so the server learns about them by
tailing: :class:`EventHub` asks the manager every ``poll_interval`` which job rows changed
and wakes the sockets watching those jobs. Each job socket keeps one cursor (``last_sent``)
and only ever sends ``seq > last_sent`` read from the database, so delivery is in order and
exactly once by construction, across reconnects and server restarts alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web, websocket

from .errors import JobNotFound, SpecError
from .handlers import AUTH_RESOURCE, MAX_INT, ErrorMixin, run_in_db_pool
from .states import TERMINAL
from .timestamps import iso

PAGE = 500  # events read from the database at once
SLICE = 100  # events written between two yields to the event loop
HEARTBEAT = 10.0  # seconds of silence before a heartbeat frame
FALLBACK_POLL = 1.0  # a job socket re-reads the log this often even without a wake-up
SEND_TIMEOUT = 10.0  # a client that does not take a page in this long is closed (1013)
CHANGE_WINDOW = 2.0  # re-read rows this recent: commits may land slightly out of time order
LIST_QUEUE = 2000  # per /stream client; beyond this the client is too slow (1013)


class _SlowConsumer(Exception):
    pass


class EventHub:
    """Tails job changes from the database and wakes the sockets that watch them."""

    def __init__(self, manager: Any, settings: dict[str, Any], poll_interval: float = 0.025):
        self.manager = manager
        self.settings = settings
        self.poll_interval = poll_interval
        self.latest: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._waiters: dict[str, set[asyncio.Event]] = {}
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

    def watch(self, job_id: str) -> asyncio.Event:
        self.ensure_started()
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        return event

    def unwatch(self, job_id: str, event: asyncio.Event) -> None:
        waiters = self._waiters.get(job_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[job_id]

    def add_list_client(self, client: _ListClient) -> None:
        self.ensure_started()
        self._lists.add(client)

    def remove_list_client(self, client: _ListClient) -> None:
        self._lists.discard(client)

    def deleted(self, job_id: str) -> None:
        self.latest.pop(job_id, None)
        self._seen.pop(job_id, None)
        for event in self._waiters.get(job_id, ()):
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
                self.manager_log("jobctl: tail query failed")
                rows = []
            now_seen = since
            for updated_at, job in rows:
                now_seen = max(now_seen, updated_at)
                key = (job["last_seq"], job["status"], updated_at)
                if self._seen.get(job["id"]) == key:
                    continue
                self._seen[job["id"]] = key
                self.latest[job["id"]] = job
                for event in self._waiters.get(job["id"], ()):
                    event.set()
                for client in list(self._lists):
                    client.push({"type": "job", "job": job})
            since = now_seen
            # forget rows that left the re-read window
            cutoff = since - 2 * CHANGE_WINDOW
            for job_id in [j for j, k in self._seen.items() if k[2] < cutoff]:
                del self._seen[job_id]
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    def manager_log(self, message: str) -> None:
        import logging

        logging.getLogger("jupyter_jobctl").warning(message, exc_info=True)


class _StreamBase(
    ErrorMixin, ExtensionHandlerMixin, WebSocketMixin, websocket.WebSocketHandler, JupyterHandler
):  # type: ignore[misc]
    auth_resource = AUTH_RESOURCE

    def set_default_headers(self) -> None:
        pass  # as jupyter_server's kernel socket: no HTML security headers on a socket

    @property
    def manager(self) -> Any:
        return self.settings["jobctl_manager"]

    @property
    def hub(self) -> EventHub:
        return self.settings["jobctl_hub"]

    @property
    def heartbeat(self) -> float:
        return float(self.settings.get("jobctl_heartbeat", HEARTBEAT))

    async def authorize_read(self) -> None:
        # await: an async Authorizer returns a coroutine, which is truthy if not awaited
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE)
        )
        if not allowed:
            raise web.HTTPError(403, "You are not authorised to read jobctl streams.")

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send_text(json.dumps(message))

    async def send_text(self, text: str) -> None:
        """Send one frame; a client that does not take it in time is closed with 1013."""
        try:
            timeout = self.settings.get("jobctl_send_timeout", SEND_TIMEOUT)
            await asyncio.wait_for(self.write_message(text), timeout)
        except asyncio.TimeoutError:
            raise _SlowConsumer() from None

    def on_message(self, message: Any) -> None:
        pass  # the streams are server -> client only

    def close_slow(self) -> None:
        self.close(1013, "Client too slow; reconnect and resume from your last seq.")


class JobStreamHandler(_StreamBase):
    """WS /jobs/{id}/stream?after=SEQ: snapshot, backlog, live events, heartbeats, done."""

    _task: asyncio.Task[None] | None = None

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
        self._wake = self.hub.watch(self.job_id)
        self._task = asyncio.ensure_future(self._pump())

    def on_close(self) -> None:
        self.hub.unwatch(self.job_id, self._wake)
        if self._task is not None:
            self._task.cancel()

    async def _frames(self, last: int) -> int:
        """Send every event after ``last`` in pages; returns the new last sent seq."""
        head = '{"type":"event","job":' + json.dumps(self.job_id) + ',"seq":'
        while True:
            page = await run_in_db_pool(
                self.settings, self.manager.events_raw, self.job_id, last, PAGE
            )
            if not page:
                return last
            # the stored data is already JSON: splice it in rather than decode and re-encode
            for start in range(0, len(page), SLICE):
                if start:
                    await asyncio.sleep(0)  # short slices: /health and other sockets go between
                chunk = page[start : start + SLICE]
                for seq, type_, ts, data in chunk[:-1]:
                    self.write_message(
                        f'{head}{seq},"event":"{type_}","ts":"{iso(ts)}","data":{data}}}'
                    )
                seq, type_, ts, data = chunk[-1]
                frame = f'{head}{seq},"event":"{type_}","ts":"{iso(ts)}","data":{data}}}'
                await self.send_text(frame)  # flow control once per slice
            last = seq
            if len(page) < PAGE:
                return last
            await asyncio.sleep(0)  # let other sockets and /health in between pages

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
            if job["last_seq"] - last > PAGE:
                async with self.hub.replays:  # one big replay must not stall everyone
                    last = await self._frames(last)
            quiet_since = time.monotonic()
            while True:
                self._wake.clear()
                sent = await self._frames(last)
                if sent != last:
                    quiet_since = time.monotonic()
                last = sent
                latest = self.hub.latest.get(self.job_id) or job
                if latest["status"] in TERMINAL:
                    fresh = await run_in_db_pool(self.settings, self.manager.get, self.job_id)
                    if fresh["last_seq"] <= last:
                        await self.send_json(
                            {"type": "done", "status": fresh["status"], "last_seq": last}
                        )
                        self.close(1000)
                        return
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), FALLBACK_POLL)
                if time.monotonic() - quiet_since >= self.heartbeat:
                    await self.send_json({"type": "heartbeat", "last_seq": last})
                    quiet_since = time.monotonic()
        except _SlowConsumer:
            self.close_slow()
        except JobNotFound:
            self.close(4404, "The job was deleted.")
        except (websocket.WebSocketClosedError, asyncio.CancelledError):
            pass


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
