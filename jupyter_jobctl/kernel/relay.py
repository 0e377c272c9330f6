"""The comm relay: a job view whose page is not a Jupyter page (VS Code, Colab) reaches the
jobctl API through its widget's kernel comm (docs/architecture.md).

Messages (the TypeScript transport is written against exactly these):

    JS -> Python {"jobctl":"request","id":N,"method":"GET","path":"jobs/ID","body":obj|null}
    Python -> JS {"jobctl":"response","id":N,"status":200,"body":obj}
    JS -> Python {"jobctl":"subscribe","sub":N,"path":"jobs/ID/stream"|"stream","after":SEQ}
    Python -> JS {"jobctl":"message","sub":N,"message":<stream frame>}   (many)
                 {"jobctl":"closed","sub":N[,"code":C,"reason":R]}      (once, at the end)
    JS -> Python {"jobctl":"unsubscribe","sub":N}

A response's status is the server's, or 0 when the kernel could not reach it (``body.error``
says why); ``closed`` carries the server's close ``code`` and ``reason`` when it closed the
socket itself (1000 after ``done``, 4404 when the job was deleted, 1013 for a slow reader).
Paths are relative to ``jobctl/api/`` and must stay under it. Requests and streams run in
threads, so the kernel's shell thread is never held by the network. The view reconnects by
subscribing again with its last seq; the relay itself never retries.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .client import JobctlClient, JobctlError, StreamConnection

Send = Callable[[dict[str, Any]], None]
ClientFactory = Callable[[], JobctlClient]

METHODS = frozenset({"GET", "POST", "DELETE"})
# a path under jobctl/api/: plain segments, an optional query; no "..", no scheme, no "%" in
# the path part (an encoded "/" or "." must not reach the router)
REQUEST_PATH = re.compile(r"^(?!/)(?:[A-Za-z0-9_.~-]+/)*[A-Za-z0-9_.~-]+(?:\?[^#\s]*)?$")
STREAM_PATH = re.compile(r"^(?:jobs/[0-9A-Za-z]+/stream|stream)$")
REQUEST_THREADS = 4
UNREACHABLE = 0  # a response's status when the kernel could not reach the server


class CommRelay:
    """Serves one widget's relay messages; ``send`` posts a message back to the view."""

    def __init__(self, send: Send, client: JobctlClient | ClientFactory) -> None:
        self._send = send
        self._client = client if isinstance(client, JobctlClient) else None
        self._factory = None if isinstance(client, JobctlClient) else client
        self._lock = threading.Lock()  # guards the subscriptions
        self._client_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="jobctl-relay")
        self._subs: dict[Any, StreamConnection | None] = {}
        self._closed = False

    # -- the comm side -----------------------------------------------------------------

    def handle(self, content: Any) -> bool:
        """Handle one message from the view; ``False`` if it is not a relay message."""
        if not isinstance(content, dict) or "jobctl" not in content or self._closed:
            return False
        kind = content["jobctl"]
        if kind == "request":
            self._pool.submit(self._request, content)
        elif kind == "subscribe":
            self._subscribe(content)
        elif kind == "unsubscribe":
            self._unsubscribe(content.get("sub"))
        else:
            return False
        return True

    def close(self) -> None:
        """End every subscription and stop taking requests (the widget is gone)."""
        self._closed = True
        with self._lock:
            subs = list(self._subs.items())
        for _, conn in subs:
            if conn is not None:
                conn.abort()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._factory is not None and self._client is not None:
            self._client.close()  # the relay found it, so the relay owns it

    # -- requests ----------------------------------------------------------------------

    def _request(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        method = str(message.get("method") or "GET").upper()
        path = message.get("path")
        body = message.get("body")
        if method not in METHODS:
            self._reply(request_id, 400, {"error": f"The relay does not send {method} requests."})
            return
        if not isinstance(path, str) or not _allowed(path):
            self._reply(
                request_id,
                400,
                {"error": f"The relay only reaches the jobctl API; {path!r} is not a path in it."},
            )
            return
        try:
            status, data = self.client().raw(method, path, body)
        except JobctlError as exc:  # no server to answer: status 0, as the view expects
            status, data = UNREACHABLE, {"error": str(exc)}
        self._reply(request_id, status, data)

    def _reply(self, request_id: Any, status: int, body: Any) -> None:
        self._post({"jobctl": "response", "id": request_id, "status": status, "body": body})

    # -- subscriptions -----------------------------------------------------------------

    def _subscribe(self, message: dict[str, Any]) -> None:
        sub = message.get("sub")
        path = message.get("path")
        after = message.get("after")
        if (
            not isinstance(path, str)
            or STREAM_PATH.match(path) is None
            or (after is not None and (not isinstance(after, int) or isinstance(after, bool)))
        ):
            self._post({"jobctl": "closed", "sub": sub})
            return
        with self._lock:
            if sub in self._subs:
                return  # a subscription number in use: the view's bug; keep the live one
            self._subs[sub] = None
        threading.Thread(
            target=self._pump,
            args=(sub, path, None if path == "stream" else after or 0),
            name=f"jobctl-relay-sub-{sub}",
            daemon=True,
        ).start()

    def _pump(self, sub: Any, path: str, after: int | None) -> None:
        try:
            conn: StreamConnection | None = self.client().open_stream(path, after)
        except JobctlError:
            conn = None
        if conn is not None:
            with self._lock:
                wanted = sub in self._subs and not self._closed
                if wanted:
                    self._subs[sub] = conn
            with conn:
                if wanted:
                    for frame in conn:
                        self._post({"jobctl": "message", "sub": sub, "message": frame})
        with self._lock:
            if self._subs.get(sub) is conn:
                del self._subs[sub]
        closed: dict[str, Any] = {"jobctl": "closed", "sub": sub}
        if conn is not None and conn.close_code is not None:  # the server's own close
            closed.update(code=conn.close_code, reason=conn.close_reason)
        self._post(closed)

    def _unsubscribe(self, sub: Any) -> None:
        with self._lock:
            conn = self._subs.pop(sub, None)
        if conn is not None:
            conn.abort()

    # -- shared ------------------------------------------------------------------------

    def client(self) -> JobctlClient:
        """The API client, found on first use (discovery reads files and may ask servers)."""
        with self._client_lock:
            if self._client is None:
                assert self._factory is not None
                self._client = self._factory()
            return self._client

    def _post(self, message: dict[str, Any]) -> None:
        try:
            self._send(message)
        except Exception:  # the comm went with its kernel connection: nobody left to tell
            pass


def _allowed(path: str) -> bool:
    if REQUEST_PATH.match(path) is None:
        return False
    segments = path.split("?", 1)[0].split("/")
    return all(s not in (".", "..") for s in segments)
