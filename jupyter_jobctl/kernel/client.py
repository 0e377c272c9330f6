"""A small typed client of the jobctl HTTP and WebSocket API (``{base_url}jobctl/api/``).

It talks to the Jupyter server only over its API: no engine, store or server module is
imported, so it works from a kernel, a terminal or another machine alike.

    client = JobctlClient.discover()          # or JobctlClient("http://127.0.0.1:8888/", token)
    job = client.create_job("training", {"target": "jupyter_jobctl.examples.train:main"},
                            start=True)
    for frame in client.follow(job["id"]):    # snapshot, events..., done
        ...
    client.stop(job["id"])

Every API error raises :class:`JobctlError` carrying the server's own sentence.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx

if TYPE_CHECKING:  # imported when a stream is opened: the CLI's other verbs start faster
    import websocket

API_PATH = "jobctl/api/"
# the job states that can still change; the API's `status` filter takes a comma list
ACTIVE_STATES = ("pending", "initializing", "running", "paused", "stopping")
TERMINAL_STATES = ("completed", "failed", "cancelled", "lost")
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
# front ends reconnect with exponential backoff and jitter, 0.5 s -> 30 s (docs/architecture.md)
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
# close code the server uses when the followed job is deleted
CLOSE_JOB_DELETED = 4404


class Progress(TypedDict, total=False):
    done: float | None
    total: float | None
    unit: str | None
    rate: float | None
    eta_s: float | None


class Counts(TypedDict, total=False):
    total: int
    completed: int
    passed: int
    failed: int
    skipped: int


class Job(TypedDict, total=False):
    """A job as the API returns it (docs/architecture.md)."""

    id: str
    kind: str
    name: str
    status: str
    spec: dict[str, Any]
    attempt: int
    created_at: str
    started_at: str | None
    finished_at: str | None
    last_seq: int
    progress: Progress
    counts: Counts
    metrics: dict[str, Any]
    exit_code: int
    signal: str
    reason: str
    output_path: str  # notebook jobs: the executed copy


class Event(TypedDict):
    seq: int
    type: str
    ts: str
    data: dict[str, Any]


class Batch(TypedDict, total=False):
    batch_id: str
    name: str
    start_time: str | None
    total_count: int
    completed_count: int
    pass_count: int
    fail_count: int
    status: str
    eta_s: float | None


class JobPage(TypedDict):
    jobs: list[Job]
    next: str | None


class EventPage(TypedDict):
    events: list[Event]
    next: int | None


class ResultPage(TypedDict):
    results: list[dict[str, Any]]
    next: int | None


class JobctlError(Exception):
    """Any failure of an API call, with a sentence a person understands.

    ``status`` is the HTTP status (``None`` when the server could not be reached),
    ``field`` names the offending input on a 400, ``state`` is the job's state on a 409 and
    ``body`` is the server's whole error object.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        field: str | None = None,
        *,
        state: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
        self.state = state
        self.body = body

    def __str__(self) -> str:
        return self.message


def split_url(url: str, token: str | None = None) -> tuple[str, str | None]:
    """Normalise a server URL (``http://host:port/base/``) and take a ``?token=`` out of it."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise JobctlError(f"{url!r} is not a Jupyter server URL (expected http://host:port/).")
    query_token = parse_qs(parts.query).get("token", [None])[0]
    path = parts.path
    for suffix in ("/" + API_PATH.rstrip("/"), "/lab", "/tree"):
        if path.rstrip("/").endswith(suffix):
            path = path.rstrip("/")[: -len(suffix)]
    path = path.rstrip("/") + "/"
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), token or query_token


class StreamConnection:
    """One open API WebSocket (``jobs/{id}/stream`` or ``stream``); iterate it for frames.

    Iteration ends when the server closes the socket (``close_code`` then says why: 1000
    after ``done``, 1013 for a slow client, 4404 when the job was deleted), or when the
    connection is lost or silent for longer than the client's timeout (``close_code`` None).
    :meth:`abort` may be called from another thread to end a blocked iteration.
    """

    def __init__(self, ws: websocket.WebSocket, url: str) -> None:
        import websocket

        self._lib = websocket
        self._ws = ws
        self.url = url
        self.close_code: int | None = None
        self.close_reason = ""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            frame = self.recv()
            if frame is None:
                return
            yield frame

    def recv(self) -> dict[str, Any] | None:
        """The next frame, or ``None`` once the socket is closed."""
        websocket = self._lib
        while True:
            try:
                opcode, data = self._ws.recv_data(control_frame=True)
            except (websocket.WebSocketException, OSError):
                # includes a timeout: the server heartbeats idle sockets (every 10 s by
                # default), so a silence this long means the connection is dead
                return None
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                if len(data) >= 2:
                    self.close_code = int.from_bytes(data[:2], "big")
                    self.close_reason = data[2:].decode("utf-8", "replace")
                return None
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                return json.loads(data)

    def abort(self) -> None:
        """End the connection now; a thread blocked in :meth:`recv` returns ``None``."""
        self._ws.abort()

    def close(self) -> None:
        try:
            self._ws.close(timeout=1)
        except (self._lib.WebSocketException, OSError):
            pass

    def __enter__(self) -> StreamConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JobctlClient:
    """The jobctl API of one Jupyter server.

    ``url`` is the server's URL including its base URL (``http://127.0.0.1:8888/``);
    ``token`` its API token. Thread-safe: one client can serve many threads.
    """

    def __init__(self, url: str, token: str | None = "", *, timeout: float = 30.0) -> None:
        self.url, found = split_url(url, token)
        self.token = found or ""
        self.api = self.url + API_PATH
        self.timeout = timeout
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        self._http = httpx.Client(headers=headers, timeout=timeout, follow_redirects=False)

    @classmethod
    def discover(cls, url: str | None = None, token: str | None = None) -> JobctlClient:
        """A client of the server found by :func:`jupyter_jobctl.kernel.discovery.find_server`."""
        from .discovery import find_server

        server = find_server(url, token)
        return cls(server.url, server.token)

    def __repr__(self) -> str:
        return f"JobctlClient({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JobctlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------

    def raw(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """``(status, parsed JSON body or None)`` of one API call; HTTP errors are returned,
        only an unreachable server raises. ``path`` is relative to ``jobctl/api/``."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(
                method,
                self.api + path.lstrip("/"),
                params=query or None,
                content=None if body is None else json.dumps(body).encode(),
                headers={
                    **({"Content-Type": "application/json"} if body is not None else {}),
                    **(headers or {}),
                },
            )
        except httpx.TimeoutException:
            raise JobctlError(
                f"The Jupyter server at {self.url} did not answer within {self.timeout:g} s."
            ) from None
        except httpx.HTTPError as exc:
            raise JobctlError(
                f"Could not reach the Jupyter server at {self.url} ({exc})."
            ) from None
        if not response.content:
            return response.status_code, None
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {"error": response.text[:500]}

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The parsed body of a successful API call; anything else raises :class:`JobctlError`."""
        status, data = self.raw(method, path, body, params=params, headers=headers)
        if status >= 400:
            raise self._error(status, data)
        return data

    def _error(self, status: int, data: Any) -> JobctlError:
        body = data if isinstance(data, dict) else {}
        message = body.get("error") or body.get("message") or f"HTTP {status}"
        if status in (401, 403):
            message = (
                f"{message.rstrip('.')}: the Jupyter server at {self.url} did not accept "
                "these credentials; pass --token or set JOBCTL_TOKEN."
            )
        elif status == 404 and "error" not in body:
            message = f"The Jupyter server at {self.url} has no jobctl API (is the extension on?)."
        return JobctlError(message, status, body.get("field"), state=body.get("status"), body=data)

    # -- jobs --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``{"status": "ok"|"degraded", "db": ...}``; needs no credentials."""
        return self.call("GET", "health")

    def list_jobs(
        self,
        status: str | list[str] | tuple[str, ...] | None = None,
        kind: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of jobs, newest first: ``{"jobs": [...], "next": cursor | None}``."""
        if status is not None and not isinstance(status, str):
            status = ",".join(status)
        return self.call(
            "GET",
            "jobs",
            params={"status": status, "kind": kind, "limit": limit, "cursor": cursor},
        )

    def iter_jobs(
        self,
        status: str | list[str] | tuple[str, ...] | None = None,
        kind: str | None = None,
        page_size: int = 200,
    ) -> Iterator[Job]:
        """Every matching job, newest first, following the pages."""
        cursor = None
        while True:
            page = self.list_jobs(status, kind, page_size, cursor)
            yield from page["jobs"]
            cursor = page["next"]
            if not cursor:
                return

    def get_job(self, job_id: str) -> Job:
        return self.call("GET", f"jobs/{job_id}")

    def create_job(
        self,
        kind: str,
        spec: dict[str, Any],
        name: str | None = None,
        start: bool = False,
        idempotency_key: str | None = None,
    ) -> Job:
        """Create a job (``pending``; ``start=True`` starts it at once); a repeated
        ``idempotency_key`` with the same body returns the existing job."""
        body: dict[str, Any] = {"kind": kind, "spec": spec, "start": start}
        if name is not None:
            body["name"] = name
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.call("POST", "jobs", body, headers=headers)

    def start(self, job_id: str) -> Job:
        return self.call("POST", f"jobs/{job_id}/start")

    def stop(self, job_id: str) -> Job:
        """Request a stop (idempotent; answers at once, the job ends ``cancelled``)."""
        return self.call("POST", f"jobs/{job_id}/stop")

    def pause(self, job_id: str) -> Job:
        return self.call("POST", f"jobs/{job_id}/pause")

    def resume(self, job_id: str) -> Job:
        return self.call("POST", f"jobs/{job_id}/resume")

    def delete(self, job_id: str) -> None:
        """Delete a finished job and its events (409 while it is active)."""
        self.call("DELETE", f"jobs/{job_id}")

    def rerun(self, job_id: str, only: str | None = None) -> Job:
        """Run the job's spec again as a new job; ``only="failed"`` for a batch's failures."""
        return self.call("POST", f"jobs/{job_id}/rerun", {"only": only} if only else {})

    def events(
        self,
        job_id: str,
        after: int = 0,
        limit: int | None = None,
        type: str | None = None,
    ) -> EventPage:
        """One ordered page of a job's events with ``seq > after``."""
        return self.call(
            "GET",
            f"jobs/{job_id}/events",
            params={"after": after, "limit": limit, "type": type},
        )

    def iter_events(self, job_id: str, after: int = 0, type: str | None = None) -> Iterator[Event]:
        """Every stored event with ``seq > after``, in order."""
        while True:
            page = self.events(job_id, after, 1000, type)
            yield from page["events"]
            if page["next"] is None:
                return
            after = page["next"]

    def results(
        self,
        job_id: str,
        outcome: str | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> ResultPage:
        """A test batch's per-test results."""
        return self.call(
            "GET",
            f"jobs/{job_id}/results",
            params={"outcome": outcome, "after": after, "limit": limit},
        )

    def active_batches(self) -> list[Batch]:
        return self.call("GET", "batches/active")

    def resolve_id(self, ref: str) -> str:
        """A full job id from a full id or a unique prefix of one (4+ hex digits)."""
        ref = ref.strip().lower()
        if JOB_ID.match(ref) or not re.fullmatch(r"[0-9a-f]{4,31}", ref):
            return ref
        matches = [job["id"] for job in self.iter_jobs(page_size=1000) if job["id"].startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise JobctlError(f"No job id starts with {ref!r}.", 404)
        raise JobctlError(f"{len(matches)} jobs have ids starting {ref!r}; give more of the id.")

    # -- streams -----------------------------------------------------------------------

    def open_stream(self, path: str, after: int | None = None) -> StreamConnection:
        """Open ``jobs/{id}/stream`` (``after`` = the last seq seen) or ``stream``."""
        import websocket

        url = self.api.replace("http", "ws", 1) + path.lstrip("/")
        if after is not None:
            url += "?" + urlencode({"after": after})
        header = [f"Authorization: token {self.token}"] if self.token else []
        try:
            ws = websocket.create_connection(
                url,
                header=header,
                timeout=self.timeout,
                suppress_origin=True,
                enable_multithread=True,
            )
        except websocket.WebSocketBadStatusException as exc:
            try:
                data = json.loads(exc.resp_body or b"null")
            except ValueError:
                data = None
            raise self._error(exc.status_code, data) from None
        except (websocket.WebSocketException, OSError) as exc:
            raise JobctlError(
                f"Could not reach the Jupyter server at {self.url} ({exc})."
            ) from None
        return StreamConnection(ws, url)

    def follow(
        self,
        job_id: str,
        after: int = 0,
        *,
        reconnect: bool = True,
        on_reconnect: Callable[[JobctlError], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """A job's stream frames until it has ended (``done`` is the last frame).

        Frames are the server's own (``snapshot``, ``event``, ``reset``, ``heartbeat``,
        ``done``). A lost connection is reopened with backoff and jitter (0.5 s -> 30 s) from
        the last seq seen, so no event is missed or repeated; ``reconnect=False`` raises
        instead. A deleted job raises a 404 :class:`JobctlError`.
        """
        last = after
        delay = BACKOFF_FIRST
        while True:
            try:
                with self.open_stream(f"jobs/{job_id}/stream", last) as conn:
                    delay = BACKOFF_FIRST
                    for frame in conn:
                        kind = frame.get("type")
                        if kind == "event":
                            last = frame["seq"]
                        elif kind == "reset":
                            last = 0
                        yield frame
                        if kind == "done":
                            return
                    if conn.close_code == CLOSE_JOB_DELETED:
                        raise JobctlError(f"Job {job_id} was deleted.", 404)
                    lost = JobctlError(
                        f"The stream of job {job_id} closed ({conn.close_code or 'no code'})."
                    )
            except JobctlError as exc:
                if exc.status is not None or not reconnect:
                    raise
                lost = exc
            if not reconnect:
                raise lost
            if on_reconnect is not None:
                on_reconnect(lost)
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, BACKOFF_MAX)
