"""REST handlers (docs/api.md): parse, call the manager off the event loop, serialise.

Errors are raised as domain exceptions anywhere below and turned into the JSON body
``{"error": "<sentence>", "field"?, "status"?}`` in one place: ErrorMixin.write_error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from jupyter_server.auth.decorator import allow_unauthenticated, authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from jupyter_jobctl.core import jsonsafe
from jupyter_jobctl.core.errors import Conflict, JobctlError, JobNotFound, SpecError, StorageError
from jupyter_jobctl.server import openapi

if TYPE_CHECKING:
    from jupyter_jobctl.engine.manager import JobManager
    from jupyter_jobctl.server.hub import EventHub

AUTH_RESOURCE = "jobctl"
MAX_BODY = 1024 * 1024
MAX_INT = 2**53  # the largest integer every JSON client (JavaScript) holds exactly
T = TypeVar("T")

ERROR_STATUS: list[tuple[type[JobctlError], int]] = [
    (SpecError, 400),
    (JobNotFound, 404),
    (Conflict, 409),
    (StorageError, 503),  # every database failure (DatabaseUnavailable): its sentence
]


class PayloadTooLarge(JobctlError):
    pass


async def run_in_db_pool(
    settings: dict[str, Any],
    fn: Callable[..., T],
    *args: Any,
    pool: str = "jobctl_db_pool",
    **kw: Any,
) -> T:
    """Database work runs in the extension's thread pool so the event loop stays free."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(settings[pool], partial(fn, *args, **kw))


def allowed_methods(handler: type) -> list[str]:
    """The HTTP methods a handler class really implements (not tornado's 405 defaults)."""
    return [
        m
        for m in ("GET", "POST", "PUT", "PATCH", "DELETE")
        if getattr(handler, m.lower()) is not getattr(web.RequestHandler, m.lower())
    ]


class ErrorMixin:
    """The one place that turns exceptions into HTTP error bodies (API and WebSocket handlers)."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        handler: Any = self
        exc = kwargs.get("exc_info", (None, None, None))[1]
        body: dict[str, Any]
        if isinstance(exc, PayloadTooLarge):
            status_code, body = 413, {"error": str(exc)}
        elif isinstance(exc, JobctlError):
            status_code = next((code for cls, code in ERROR_STATUS if isinstance(exc, cls)), 400)
            body = {"error": str(exc)}
            if isinstance(exc, SpecError):
                body["field"] = exc.field
            if isinstance(exc, Conflict) and exc.status:
                body["status"] = exc.status
        elif isinstance(exc, web.HTTPError):
            body = {"error": exc.log_message or exc.reason or handler._reason}
        elif status_code >= 500:
            body = {"error": "The server failed to handle this request; see the server log."}
        else:
            body = {"error": handler._reason}
        handler.set_status(status_code)
        if status_code == 405:  # RFC 9110: say which methods the route has
            handler.set_header("Allow", ", ".join(allowed_methods(type(handler))))
        handler.set_header("Content-Type", "application/json; charset=UTF-8")
        handler.finish(jsonsafe.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, JobctlError):
            return  # a user error, answered as 4xx: no traceback in the server log
        super().log_exception(typ, value, tb)  # type: ignore[misc]


class JobctlHandler(ErrorMixin, ExtensionHandlerMixin, APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def manager(self) -> JobManager:
        manager: JobManager = self.settings["jobctl_manager"]
        return manager

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a manager call in the database thread pool, never on the event loop."""
        return await run_in_db_pool(self.settings, fn, *args, **kwargs)

    def json_body(self, schema: str, *, required: bool = True) -> dict[str, Any]:
        raw = self.request.body or b""
        if len(raw) > MAX_BODY:
            raise PayloadTooLarge(f"The request body is larger than {MAX_BODY // 1024} KiB.")
        if not raw.strip():
            if required:
                raise SpecError("body", "The request body must be a JSON object.")
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SpecError("body", f"The request body is not valid JSON ({exc}).") from None
        except RecursionError:
            field = jsonsafe.too_deep_field(raw)
            raise SpecError(
                field, f"{field} is nested more than {jsonsafe.MAX_DEPTH} levels deep."
            ) from None
        # strict JSON: bounded depth, no NaN/Infinity, no lone surrogates (400 naming the field)
        jsonsafe.check_request(body)
        return openapi.validate_body(schema, body)

    def int_arg(self, name: str, default: int, low: int, high: int = MAX_INT) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise SpecError(name, f"{name} must be an integer from {low} to {high}.")
        return value

    def send(self, obj: Any, status: int = 200) -> None:
        """Strict JSON: a NaN/Infinity a job reported goes out as "NaN"/"Infinity" (jsonsafe)."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(jsonsafe.dumps(obj))

    def hub(self) -> EventHub:
        hub: EventHub = self.settings["jobctl_hub"]
        return hub


class HealthHandler(JobctlHandler):
    @allow_unauthenticated
    async def get(self) -> None:
        # its own thread: a health probe must not queue behind big lists and replays
        health = await run_in_db_pool(self.settings, self.manager.health, pool="jobctl_health_pool")
        self.send(health)


class OpenAPIHandler(JobctlHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.send(openapi.document())


class JobsHandler(JobctlHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        jobs, nxt = await self.call(
            self.manager.list,
            status=self.get_query_argument("status", None),
            kind=self.get_query_argument("kind", None),
            limit=self.int_arg("limit", 50, 1, 1000),
            cursor=self.get_query_argument("cursor", None) or None,
        )
        self.send({"jobs": jobs, "next": nxt})

    @web.authenticated
    @authorized("execute")  # creating a job runs code, like a terminal
    async def post(self) -> None:
        body = self.json_body("CreateJob")
        key = self.request.headers.get("Idempotency-Key") or None
        if key is not None and len(key) > 255:
            raise SpecError("Idempotency-Key", "The Idempotency-Key header is over 255 characters.")
        job, created = await self.call(
            self.manager.create,
            body["kind"],
            body["spec"],
            body.get("name"),
            start=bool(body.get("start", False)),
            idempotency_key=key,
        )
        if created:
            self.hub().poke()
        self.send(job, 201 if created else 200)


class JobHandler(JobctlHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        self.send(await self.call(self.manager.get, job_id))

    @web.authenticated
    @authorized  # DELETE -> write
    async def delete(self, job_id: str) -> None:
        await self.call(self.manager.delete, job_id)
        self.hub().deleted(job_id)
        self.set_status(204)
        self.finish()


def _action(
    method: str,
    action: Callable[[JobManager], Callable[[str], dict[str, Any]]],
    status: int,
    permission: str | None,
) -> type[JobctlHandler]:
    """``POST /jobs/{id}/<method>``: ``action(manager)`` is the manager's method to call."""

    @web.authenticated
    @authorized(permission) if permission else authorized
    async def post(self: JobctlHandler, job_id: str) -> None:
        job = await self.call(action(self.manager), job_id)
        self.hub().poke()
        self.send(job, status)

    name = f"Job{method.capitalize()}Handler"
    return type(name, (JobctlHandler,), {"post": post, "__doc__": f"POST /jobs/{{id}}/{method}"})


JobStartHandler = _action("start", lambda m: m.start, 200, "execute")
JobStopHandler = _action("stop", lambda m: m.stop, 202, None)  # POST -> write
JobPauseHandler = _action("pause", lambda m: m.pause, 200, None)
JobResumeHandler = _action("resume", lambda m: m.resume, 200, None)


class JobRerunHandler(JobctlHandler):
    @web.authenticated
    @authorized("execute")
    async def post(self, job_id: str) -> None:
        body = self.json_body("Rerun", required=False)
        job = await self.call(self.manager.rerun, job_id, body.get("only"))
        self.hub().poke()
        self.send(job, 201)


class EventsHandler(JobctlHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        limit = self.int_arg("limit", 500, 1, 1000)
        type_ = self.get_query_argument("type", None) or None
        if (
            type_ is not None
            and type_
            not in openapi.document()["components"]["schemas"]["Event"]["properties"]["type"][
                "enum"
            ]
        ):
            raise SpecError("type", f"type {type_!r} is not an event type.")
        events = await self.call(
            self.manager.events, job_id, self.int_arg("after", 0, 0), limit, type_
        )
        nxt = events[-1]["seq"] if len(events) == limit else None
        self.send({"events": events, "next": nxt})


class ResultsHandler(JobctlHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        results, nxt = await self.call(
            self.manager.results,
            job_id,
            self.get_query_argument("outcome", None) or None,
            self.int_arg("after", 0, 0),
            self.int_arg("limit", 500, 1, 1000),
        )
        self.send({"results": results, "next": nxt})


class ActiveBatchesHandler(JobctlHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.send(await self.call(self.manager.active_batches))


class NotFoundHandler(JobctlHandler):
    """Unknown paths under the API answer JSON, not an HTML page."""

    @web.authenticated
    @authorized
    async def get(self, path: str) -> None:
        raise web.HTTPError(404, f"There is no jobctl API route /{path}.")

    post = delete = put = patch = get


# (OpenAPI path, handler): the route table and the contract test both read this
ROUTES: list[tuple[str, type[web.RequestHandler]]] = [
    ("/health", HealthHandler),
    ("/openapi.json", OpenAPIHandler),
    ("/jobs", JobsHandler),
    ("/jobs/{job_id}", JobHandler),
    ("/jobs/{job_id}/start", JobStartHandler),
    ("/jobs/{job_id}/stop", JobStopHandler),
    ("/jobs/{job_id}/pause", JobPauseHandler),
    ("/jobs/{job_id}/resume", JobResumeHandler),
    ("/jobs/{job_id}/rerun", JobRerunHandler),
    ("/jobs/{job_id}/events", EventsHandler),
    ("/jobs/{job_id}/results", ResultsHandler),
    ("/batches/active", ActiveBatchesHandler),
]
API_PREFIX = "jobctl/api"


def url_pattern(path: str) -> str:
    return API_PREFIX + path.replace("{job_id}", "(?P<job_id>[^/]+)")
