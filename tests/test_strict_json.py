"""Every response and frame is strict JSON, whatever a job reports or the database holds.

Non-finite numbers: in free-form values (metrics, config, event data) they are the strings
"NaN", "Infinity", "-Infinity"; in typed number fields (progress, eta_s) they are null.
Each check parses with a parser that refuses NaN/Infinity tokens, as a browser does.
"""

from __future__ import annotations

import asyncio
import json
import math
import time

import pytest
from sqlalchemy import insert
from tornado.httpclient import HTTPClientError

from conftest import TESTS_DIR, forge_row
from jupyter_jobctl.core import jsonsafe
from jupyter_jobctl.db.models import events
from jupyter_jobctl.manager import JobManager
from jupyter_jobctl.server.frames import event_frames, frame_payload


def strict(text: str | bytes):
    """json.loads as JSON.parse: NaN, Infinity and -Infinity are errors."""

    def refuse(token: str):
        raise AssertionError(f"not JSON: the token {token} in {str(text)[:300]}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def api(jp_fetch):
    async def call(method: str, *path: str, body=None, params=None):
        kwargs = {"method": method}
        if params:
            kwargs["params"] = params
        if body is not None:
            kwargs["body"] = json.dumps(body)
        try:
            r = await jp_fetch("jobctl", "api", *path, **kwargs)
        except HTTPClientError as e:
            r = e.response
        assert r is not None
        return r.code, strict(r.body.decode()) if r.body else None

    return call


async def _frames(ws, until, timeout: float = 30.0) -> list[dict]:
    """Messages of a stream, each parsed strictly, until ``until(messages)`` holds."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while not until(got):
        left = deadline - time.monotonic()
        assert left > 0, f"stream: no end condition in {got[-5:]}"
        raw = await asyncio.wait_for(ws.read_message(), left)
        assert raw is not None, f"stream closed early after {got[-5:]}"
        got.append(strict(raw))
    return got


def _has_metric_events(messages: list[dict]) -> bool:
    return sum(1 for m in messages if m.get("event") == "metric") >= 2


async def test_a_diverging_training_is_strict_json_on_every_path(
    api, jp_ws_fetch, server_manager: JobManager
) -> None:
    stream = await jp_ws_fetch("jobctl", "api", "stream")
    code, job = await api(
        "POST",
        "jobs",
        body={
            "kind": "training",
            "spec": {
                "target": "hostile_jobs:diverging",
                "config": {"wait": True},
                "cwd": str(TESTS_DIR),
            },
            "start": True,
        },
    )
    assert code == 201, job
    job_id = job["id"]
    ws = await jp_ws_fetch("jobctl", "api", "jobs", job_id, "stream")
    try:
        frames = await _frames(ws, _has_metric_events)  # snapshot, events: each parsed strictly
        metric_data = [m["data"] for m in frames if m.get("event") == "metric"]
        assert {"step": 1, "loss": "NaN", "grad": "Infinity", "low": "-Infinity", "fine": 0.5} in (
            metric_data
        )
        assert {"nested": {"values": [1.0, "NaN", "Infinity"]}, "ok": 1} in metric_data
        progress = [m["data"] for m in frames if m.get("event") == "progress"]
        # an event's data is free-form (named); the row's progress fields are typed (null)
        assert progress[0]["done"] == "NaN" and progress[0]["total"] == "Infinity"

        # the row (GET /jobs/{id}, GET /jobs) and the event page
        code, row = await api("GET", "jobs", job_id)
        assert code == 200
        assert row["metrics"] == {
            "loss": "NaN",
            "grad": "Infinity",
            "low": "-Infinity",
            "fine": 0.5,
        }
        assert row["progress"]["done"] is None and row["progress"]["total"] is None
        code, page = await api("GET", "jobs")
        assert code == 200 and any(j["id"] == job_id for j in page["jobs"])
        code, page = await api("GET", "jobs", job_id, "events")
        assert code == 200
        assert any(e["data"].get("loss") == "NaN" for e in page["events"])

        # the list stream carries the row as it changes
        listed = await _frames(
            stream,
            lambda ms: any(
                m.get("type") == "job" and m["job"]["id"] == job_id and m["job"]["metrics"]
                for m in ms
            ),
        )
        assert listed
    finally:
        ws.close()
        stream.close()
        server_manager.stop(job_id)


async def test_what_is_stored_cannot_poison_any_response(
    api, jp_ws_fetch, server_manager: JobManager
) -> None:
    """Rows and events written before this rule (NaN in JSON text, NaN/Infinity in number
    columns, a config nested 978 deep) answer 200 with strict JSON everywhere."""
    m = server_manager
    deep = '{"a":' * 977 + "{}" + "}" * 977  # as the text an old server stored
    job, _ = m.create("training", {"target": "a:b"})
    batch, _ = m.create("test_batch", {"args": []})
    job_id, batch_id = job["id"], batch["id"]
    now = time.time()
    forge_row(
        m,
        job_id,
        spec='{"target":"a:b","config":{"lr":NaN,"deep":' + deep + "}}",
        metrics='{"loss":NaN,"big":Infinity}',
        progress_done=math.inf,
        progress_rate=-math.inf,
        progress_eta=math.inf,
        updated_at=now,
        last_seq=3,
    )
    forge_row(m, batch_id, status="running", started_at=now, progress_eta=math.inf, updated_at=now)
    with m.store._tx() as conn:
        conn.execute(
            insert(events),
            [
                {"job_id": job_id, "seq": 2, "type": "metric", "ts": now, "data": '{"loss":NaN}'},
                {"job_id": job_id, "seq": 3, "type": "log", "ts": now, "data": '{"line":"NaN"}'},
            ],
        )

    stream = await jp_ws_fetch("jobctl", "api", "stream")
    try:
        code, page = await api("GET", "jobs")
        assert code == 200
        row = next(j for j in page["jobs"] if j["id"] == job_id)
        assert row["metrics"] == {"loss": "NaN", "big": "Infinity"}
        assert row["spec"]["config"]["lr"] == "NaN"
        assert row["progress"]["done"] is None and row["progress"]["eta_s"] is None
        code, one = await api("GET", "jobs", job_id)
        assert code == 200 and one["progress"]["rate"] is None
        code, page = await api("GET", "jobs", job_id, "events")
        assert code == 200
        assert [e["data"] for e in page["events"][1:]] == [{"loss": "NaN"}, {"line": "NaN"}]
        code, batches = await api("GET", "batches", "active")
        assert code == 200
        assert [b["eta_s"] for b in batches if b["batch_id"] == batch_id] == [None]

        ws = await jp_ws_fetch("jobctl", "api", "jobs", job_id, "stream")
        try:
            frames = await _frames(ws, lambda ms: sum(1 for x in ms if x["type"] == "event") >= 3)
        finally:
            ws.close()
        assert frames[0]["type"] == "snapshot" and frames[0]["job"]["metrics"]["loss"] == "NaN"
        assert [f["data"] for f in frames if f["type"] == "event"][1:] == [
            {"loss": "NaN"},
            {"line": "NaN"},
        ]
        forge_row(m, job_id, updated_at=time.time())  # the list stream sends the row again
        await _frames(
            stream,
            lambda ms: any(x.get("type") == "job" and x["job"]["id"] == job_id for x in ms),
        )
    finally:
        stream.close()


def test_the_store_writes_only_strict_json(tmp_path) -> None:
    """What a job reports is stored as strict JSON text, its typed columns without NaN."""
    m = JobManager(f"sqlite:///{tmp_path / 'j.db'}")
    try:
        job, _ = m.create("training", {"target": "a:b"})
        forge_row(m, job["id"], status="running", attempt=1)
        m.store.append_events(
            job["id"],
            1,
            [("metric", {"loss": math.nan, "deep": [[[[math.inf]]]]})],
            {"metrics": {"loss": math.nan}, "progress_rate": math.nan, "progress_eta": math.inf},
        )
        raw = m.store.events_raw(job["id"], 0, 10)
        for _, _, _, data in raw:
            strict(data)
        assert strict(raw[-1][3]) == {"loss": "NaN", "deep": [[[["Infinity"]]]]}
        row = m.store.get_row(job["id"])
        assert strict(row["metrics"]) == {"loss": "NaN"}
        assert row["progress_rate"] is None and row["progress_eta"] is None
    finally:
        m.close()


def test_frames_of_old_stored_events_are_re_encoded_strictly() -> None:
    rows = [
        (1, "metric", 0.0, '{"a":NaN,"b":-Infinity,"c":"NaN text"}'),
        (2, "log", 0.0, '{"x":1}'),
    ]
    payloads = [strict(frame_payload(f)) for f in event_frames("j", rows)]
    assert payloads[0]["data"] == {"a": "NaN", "b": "-Infinity", "c": "NaN text"}
    assert payloads[1]["data"] == {"x": 1}


def test_dumps_never_writes_nan_and_survives_depth() -> None:
    value = {"a": math.nan, "b": [math.inf, -math.inf], 1.5: "k"}
    assert strict(jsonsafe.dumps(value)) == {"a": "NaN", "b": ["Infinity", "-Infinity"], "1.5": "k"}
    deep: list = []
    cursor = deep
    for _ in range(5000):
        cursor.append([])
        cursor = cursor[0]
    text = jsonsafe.dumps(deep)  # too deep for json: cut at MAX_DEPTH
    assert jsonsafe.TOO_DEEP in text
