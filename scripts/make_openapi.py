"""Writes jupyter_jobctl/server/openapi.json, the HTTP contract (docs/api.md).

Edit this file, run `.venv/bin/python scripts/make_openapi.py` (the package must be
importable: states, kinds, outcomes and event types come from jupyter_jobctl.core.states),
commit both; tests/test_contract.py fails when the two disagree or when a registered route
is missing from the document.
"""

import json
from pathlib import Path

from jupyter_jobctl.core.states import EventType, JobKind, JobState, TestOutcome

TARGET = Path(__file__).resolve().parent.parent / "jupyter_jobctl" / "server" / "openapi.json"
# the enums of the contract, from their one definition (in definition order)
STATES = [s.value for s in JobState]
KINDS = [k.value for k in JobKind]
OUTCOMES = [o.value for o in TestOutcome]
EVENT_TYPES = [t.value for t in EventType]


def ref(n):
    return {"$ref": f"#/components/schemas/{n}"}


def err(desc):
    return {"description": desc, "content": {"application/json": {"schema": ref("Error")}}}


def ok(desc, schema):
    return {"description": desc, "content": {"application/json": {"schema": schema}}}


job_id = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    "description": "Job id (32 hex digits).",
}
auth_errors = {
    "403": err("Not authenticated, or not authorised for this action on resource `jobctl`."),
    "503": err(
        "The job database cannot be used now (unreachable, locked by another process, its disk full): `error` says which in one sentence. Retry later; running jobs are not affected."
    ),
}


def action(summary, op, ok_code, desc, perm, extra=None, body=None):
    o = {
        "summary": summary,
        "operationId": op,
        "parameters": [job_id],
        "x-jobctl-permission": perm,
        "responses": {
            ok_code: ok(desc, ref("Job")),
            "404": err("No job with this id."),
            "409": err("Not applicable in the job's current state; the body names it."),
            **auth_errors,
        },
    }
    if extra:
        o["responses"].update(extra)
    if body:
        o["requestBody"] = body
    return o


nullable_num = {"type": ["number", "null"]}
doc = {
    "openapi": "3.1.0",
    "info": {
        "title": "jupyter_jobctl",
        "version": "0.1.0",
        "description": 'Supervised, persistent, stoppable jobs for Jupyter (docs/api.md, docs/architecture.md). Every route needs Jupyter\'s token or cookie (XSRF for cookie POSTs) except GET /health. Authorisation resource `jobctl`: `read` for GET and streams, `write` for stop/pause/resume/delete, `execute` for create/start/rerun. WebSocket routes are described under `x-websockets`. Every response and frame is strict JSON (RFC 8259): a non-finite number a job reports (NaN, Infinity, e.g. a diverging loss) is the string "NaN", "Infinity" or "-Infinity" inside free-form values (metrics, config, event data) and null in a typed number field (progress, eta_s). Requests must be strict JSON too: nested at most 64 levels, finite numbers, no lone UTF-16 surrogates (else 400 naming the field).',
    },
    "servers": [{"url": "{base_url}jobctl/api", "variables": {"base_url": {"default": "/"}}}],
    "security": [{"token": []}],
    "paths": {
        "/health": {
            "get": {
                "summary": "Liveness, and whether the job database can be read and written (no credentials needed).",
                "operationId": "health",
                "security": [],
                "responses": {"200": ok("Health.", ref("Health"))},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document.",
                "operationId": "openapi",
                "x-jobctl-permission": "read",
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **auth_errors,
                },
            }
        },
        "/jobs": {
            "get": {
                "summary": "List jobs, newest first, keyset-paged.",
                "operationId": "listJobs",
                "x-jobctl-permission": "read",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "A state, or several separated by commas.",
                    },
                    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": KINDS}},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "`next` of the previous page.",
                    },
                ],
                "responses": {
                    "200": ok("A page of jobs.", ref("JobList")),
                    "400": err("A bad filter or cursor; `field` names it."),
                    **auth_errors,
                },
            },
            "post": {
                "summary": "Create a job (and optionally start it).",
                "operationId": "createJob",
                "x-jobctl-permission": "execute",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                        "description": "Same key + same body returns the existing job (200); a different body is refused (409).",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("CreateJob")}},
                },
                "responses": {
                    "201": {
                        **ok("Created.", ref("Job")),
                        "links": {
                            name: {
                                "operationId": op,
                                "parameters": {"job_id": "$response.body#/id"},
                            }
                            for name, op in [
                                ("GetJob", "getJob"),
                                ("StartJob", "startJob"),
                                ("StopJob", "stopJob"),
                                ("DeleteJob", "deleteJob"),
                                ("ListEvents", "listEvents"),
                                ("PauseJob", "pauseJob"),
                            ]
                        },
                    },
                    "200": ok("The job created earlier with this Idempotency-Key.", ref("Job")),
                    "400": err("Malformed JSON or a bad spec; `field` names the offending part."),
                    "409": err("Idempotency-Key reused with a different body."),
                    "413": err("Body over 1 MiB."),
                    **auth_errors,
                },
            },
        },
        "/jobs/{job_id}": {
            "get": {
                "summary": "One job with its latest state.",
                "operationId": "getJob",
                "x-jobctl-permission": "read",
                "parameters": [job_id],
                "responses": {
                    "200": ok("The job.", ref("Job")),
                    "404": err("No job with this id."),
                    **auth_errors,
                },
            },
            "delete": {
                "summary": "Delete a finished job and its events.",
                "operationId": "deleteJob",
                "x-jobctl-permission": "write",
                "parameters": [job_id],
                "responses": {
                    "204": {"description": "Deleted."},
                    "404": err("No job with this id."),
                    "409": err("The job is still active; stop it first."),
                    **auth_errors,
                },
            },
        },
        "/jobs/{job_id}/start": {
            "post": action(
                "Start a pending job.", "startJob", "200", "Started (initializing).", "execute"
            )
        },
        "/jobs/{job_id}/stop": {
            "post": action(
                "Request a stop: idempotent, answers at once.",
                "stopJob",
                "202",
                "Stopping (or cancelled, for a pending job).",
                "write",
            )
        },
        "/jobs/{job_id}/pause": {
            "post": action(
                "Pause a running job at its next checkpoint.", "pauseJob", "200", "Paused.", "write"
            )
        },
        "/jobs/{job_id}/resume": {
            "post": action("Resume a paused job.", "resumeJob", "200", "Running again.", "write")
        },
        "/jobs/{job_id}/rerun": {
            "post": action(
                "Run the job's spec again as a new job.",
                "rerunJob",
                "201",
                "The new job.",
                "execute",
                extra={"400": err("A bad `only` value; `field` names it.")},
                body={"required": False, "content": {"application/json": {"schema": ref("Rerun")}}},
            )
        },
        "/jobs/{job_id}/events": {
            "get": {
                "summary": "An ordered page of a job's events.",
                "operationId": "listEvents",
                "x-jobctl-permission": "read",
                "parameters": [
                    job_id,
                    {
                        "name": "after",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 2**53, "default": 0},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1000,
                            "default": 500,
                        },
                    },
                    {
                        "name": "type",
                        "in": "query",
                        "schema": {"type": "string", "enum": EVENT_TYPES},
                    },
                ],
                "responses": {
                    "200": ok("Events with seq > after.", ref("EventList")),
                    "400": err("A bad paging value."),
                    "404": err("No job with this id."),
                    **auth_errors,
                },
            }
        },
        "/jobs/{job_id}/results": {
            "get": {
                "summary": "A test batch's per-test results.",
                "operationId": "listResults",
                "x-jobctl-permission": "read",
                "parameters": [
                    job_id,
                    {
                        "name": "outcome",
                        "in": "query",
                        "schema": {"type": "string", "enum": OUTCOMES},
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 2**53, "default": 0},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1000,
                            "default": 500,
                        },
                    },
                ],
                "responses": {
                    "200": ok("Results with seq > after.", ref("ResultList")),
                    "400": err("A bad filter or paging value."),
                    "404": err("No job with this id."),
                    **auth_errors,
                },
            }
        },
        "/batches/active": {
            "get": {
                "summary": "Test batches that are not finished.",
                "operationId": "activeBatches",
                "x-jobctl-permission": "read",
                "responses": {
                    "200": ok("Active batches.", {"type": "array", "items": ref("Batch")}),
                    **auth_errors,
                },
            }
        },
    },
    "x-websockets": {
        "/jobs/{job_id}/stream": {
            "summary": "One job's stream: snapshot, backlog (seq > after), live events, heartbeats, done.",
            "x-jobctl-permission": "read",
            "parameters": [
                job_id,
                {
                    "name": "after",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 2**53, "default": 0},
                },
            ],
            "messages": ["snapshot", "reset", "event", "heartbeat", "done"],
        },
        "/stream": {
            "summary": "Every job's summary changes (created, status, progress, counts, deleted).",
            "x-jobctl-permission": "read",
            "parameters": [],
            "messages": ["job", "deleted", "heartbeat"],
        },
    },
    "components": {
        "securitySchemes": {
            "token": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`token <server token>`",
            }
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {"type": "string"},
                    "field": {"type": "string"},
                    "status": {"type": "string", "enum": STATES},
                },
            },
            "Health": {
                "type": "object",
                "required": ["status", "db"],
                "additionalProperties": False,
                "properties": {
                    "status": {"type": "string", "enum": ["ok", "degraded"]},
                    "db": {
                        "type": "string",
                        "enum": [
                            "ok",
                            "unreachable",
                            "disk full",
                            "locked",
                            "read-only",
                            "write failed",
                        ],
                        "description": "`ok`; `unreachable` when reads fail; else what keeps writes from working (a tiny real commit is tried, and the free space of a SQLite database's disk is looked at).",
                    },
                    "reason": {
                        "type": "string",
                        "description": "When degraded: one sentence naming the database (and for a full disk, the disk).",
                    },
                },
            },
            "CreateJob": {
                "type": "object",
                "required": ["kind", "spec"],
                "additionalProperties": False,
                "properties": {
                    "kind": {"type": "string", "enum": KINDS},
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "spec": {
                        "type": "object",
                        "description": "training: {target, config?, cwd?, env?}; test_batch: {args?, cwd?, env?}; command: {argv, cwd?, env?}; notebook: {path, parameters?, kernel?, cwd?, env?, output_path?} (a .ipynb run in a kernel of its own; `parameters` names must be Python identifiers, injected papermill-style after the cell tagged `parameters`; `cwd` defaults to the notebook's folder). A relative `cwd`, `path` or `output_path` is taken from the server's root_dir and must stay inside it (stored absolute). `env` names starting with `JOBCTL_` are jobctl's own and refused. Every kind also takes Dask placement, honoured by the `dask` and `dask-local` executors and refused with a 400 by `local`: `resources` (worker resources and amounts, e.g. {\"GPU\": 1}) and `workers` (worker addresses or names it may run on). Strict JSON: at most 64 levels deep, finite numbers, no lone surrogates.",
                    },
                    "start": {"type": "boolean", "default": False},
                },
            },
            "Rerun": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"only": {"type": "string", "enum": ["failed"]}},
            },
            "Job": {
                "type": "object",
                "required": [
                    "id",
                    "kind",
                    "name",
                    "status",
                    "spec",
                    "attempt",
                    "created_at",
                    "started_at",
                    "finished_at",
                    "last_seq",
                    "progress",
                    "counts",
                    "metrics",
                ],
                "properties": {
                    "id": {"type": "string"},
                    "kind": {"type": "string", "enum": KINDS},
                    "name": {"type": "string"},
                    "status": {"type": "string", "enum": STATES},
                    "spec": {"type": "object"},
                    "attempt": {"type": "integer"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "started_at": {"type": ["string", "null"]},
                    "finished_at": {"type": ["string", "null"]},
                    "last_seq": {"type": "integer"},
                    "progress": {
                        "type": "object",
                        "description": "Numbers, or null when unknown (or when the job reported a non-finite one).",
                        "properties": {
                            "done": nullable_num,
                            "total": nullable_num,
                            "unit": {"type": ["string", "null"]},
                            "rate": nullable_num,
                            "eta_s": nullable_num,
                        },
                    },
                    "counts": {
                        "type": "object",
                        "properties": {
                            k: {"type": "integer"}
                            for k in ["total", "completed", "passed", "failed", "skipped"]
                        },
                    },
                    "metrics": {
                        "type": "object",
                        "description": 'Latest value of each metric; a non-finite one is "NaN", "Infinity" or "-Infinity".',
                    },
                    "exit_code": {"type": "integer"},
                    "signal": {"type": "string"},
                    "output_path": {
                        "type": "string",
                        "description": "Notebook jobs: where the executed copy is written, as it goes (`spec.output_path`, else beside the input as `<name>.<first 8 characters of the id>.ipynb`).",
                    },
                    "reason": {
                        "type": "string",
                        "description": "Why the job ended as it did, in one sentence (a database failure is named, never quoted as SQL).",
                    },
                },
            },
            "JobList": {
                "type": "object",
                "required": ["jobs", "next"],
                "properties": {
                    "jobs": {"type": "array", "items": ref("Job")},
                    "next": {"type": ["string", "null"]},
                },
            },
            "Event": {
                "type": "object",
                "required": ["seq", "type", "ts", "data"],
                "properties": {
                    "seq": {"type": "integer"},
                    "type": {"type": "string", "enum": EVENT_TYPES},
                    "ts": {"type": "string"},
                    "data": {
                        "type": "object",
                        "description": 'As the job reported it; a non-finite number is "NaN", "Infinity" or "-Infinity". A log whose job reached `c.JobCtl.max_log_bytes_per_job` has a `[jobctl] log truncated` line, then only its last MiB, stored when the job ends.',
                    },
                },
            },
            "EventList": {
                "type": "object",
                "required": ["events", "next"],
                "properties": {
                    "events": {"type": "array", "items": ref("Event")},
                    "next": {"type": ["integer", "null"]},
                },
            },
            "Result": {
                "type": "object",
                "required": ["seq", "nodeid", "outcome"],
                "properties": {
                    "seq": {"type": "integer"},
                    "ts": {"type": "string"},
                    "nodeid": {"type": "string"},
                    "outcome": {"type": "string", "enum": OUTCOMES},
                    "duration": {"type": "number"},
                    "message": {"type": "string"},
                },
            },
            "ResultList": {
                "type": "object",
                "required": ["results", "next"],
                "properties": {
                    "results": {"type": "array", "items": ref("Result")},
                    "next": {"type": ["integer", "null"]},
                },
            },
            "Batch": {
                "type": "object",
                "required": [
                    "batch_id",
                    "name",
                    "start_time",
                    "total_count",
                    "completed_count",
                    "pass_count",
                    "fail_count",
                    "status",
                    "eta_s",
                ],
                "properties": {
                    "batch_id": {"type": "string"},
                    "name": {"type": "string"},
                    "start_time": {"type": ["string", "null"]},
                    "total_count": {"type": "integer"},
                    "completed_count": {"type": "integer"},
                    "pass_count": {"type": "integer"},
                    "fail_count": {"type": "integer"},
                    "status": {"type": "string", "enum": STATES},
                    "eta_s": nullable_num,
                },
            },
        },
    },
}


def render() -> str:
    return json.dumps(doc, indent=1)


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET}")
