"""Every REST route over a real Jupyter server (pytest-jupyter): success and error cases."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

from conftest import SEED, TESTS_DIR
from jupyter_jobctl.core.states import TERMINAL

DEMO = {
    "kind": "training",
    "spec": {"target": "jupyter_jobctl.examples.train:main", "config": SEED},
}
COOP = {"kind": "training", "spec": {"target": "jobs:cooperative", "cwd": str(TESTS_DIR)}}


@pytest.fixture
def api(jp_fetch):
    async def call(method: str, *path: str, body=None, raw=None, headers=None, params=None):
        kwargs = {"method": method, "headers": headers or {}}
        if params:
            kwargs["params"] = params
        if raw is not None:
            kwargs["body"] = raw
        elif body is not None:
            kwargs["body"] = json.dumps(body)
        elif method == "POST":
            kwargs["body"] = b""
            kwargs["allow_nonstandard_methods"] = True
        try:
            r = await jp_fetch("jobctl", "api", *path, **kwargs)
        except HTTPClientError as e:
            r = e.response
        assert r is not None
        text = r.body.decode() if r.body else ""
        return r.code, (json.loads(text) if text else None)

    return call


async def _wait_api(api, job_id: str, *statuses: str, timeout: float = 30.0) -> dict:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        code, job = await api("GET", "jobs", job_id)
        assert code == 200
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"{job_id} stuck in {job['status']}"
        await asyncio.sleep(0.02)


async def test_health_is_anonymous_and_reveals_nothing(api) -> None:
    code, body = await api("GET", "health", headers={"Authorization": ""})
    assert code == 200 and body == {"status": "ok", "db": "ok"}


async def test_seed_scenario_over_http(api) -> None:
    code, job = await api("POST", "jobs", body=DEMO)
    assert code == 201 and job["status"] == "pending"
    code, job = await api("POST", "jobs", job["id"], "start")
    assert code == 200 and job["status"] == "initializing"
    await _wait_api(api, job["id"], "running")
    code, stopped = await api("POST", "jobs", job["id"], "stop")
    assert code == 202 and stopped["status"] == "stopping"
    done = await _wait_api(api, job["id"], *TERMINAL)
    assert done["status"] == "cancelled"
    code, err = await api("POST", "jobs", job["id"], "stop")
    assert code == 409 and err["status"] == "cancelled" and "cancelled" in err["error"]
    code, err = await api("POST", "jobs", "f" * 32, "stop")
    assert code == 404 and "error" in err
    code, page = await api("GET", "jobs", job["id"], "events", params={"type": "log"})
    lines = [e["data"]["line"] for e in page["events"]]
    assert "[STOP] Stop request received" in lines
    assert any(line.startswith("[CANCELLATION]") for line in lines)


async def test_create_start_flag_and_idempotency(api) -> None:
    headers = {"Idempotency-Key": "abc-1"}
    body = {"kind": "command", "spec": {"argv": ["true"]}, "name": "idem"}
    code, first = await api("POST", "jobs", body=body, headers=headers)
    code2, second = await api("POST", "jobs", body=body, headers=headers)
    assert (code, code2) == (201, 200) and first["id"] == second["id"]
    code, err = await api("POST", "jobs", body={**body, "name": "other"}, headers=headers)
    assert code == 409 and "Idempotency-Key" in err["error"]
    code, started = await api("POST", "jobs", body={**body, "start": True, "name": "s"})
    assert code == 201 and started["status"] == "initializing"
    done = await _wait_api(api, started["id"], *TERMINAL)
    assert done["status"] == "completed"


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        (b"{not json", "body", "not valid JSON"),
        (b"", "body", "JSON object"),
        (b"[]", "body", "an object"),
        (b'{"spec": {}}', "kind", "kind is required"),
        (b'{"kind": "nope", "spec": {}}', "kind", "kind must be one of"),
        (b'{"kind": "command", "spec": []}', "spec", "spec must be an object"),
        (b'{"kind": "command", "spec": {"argv": ["x"]}, "start": "yes"}', "start", "true or false"),
        (b'{"kind": "command", "spec": {"argv": ["x"]}, "extra": 1}', "extra", "not a known field"),
        (b'{"kind": "command", "spec": {}}', "spec.argv", "spec.argv is required"),
        (b'{"kind": "command", "spec": {"argv": "ls"}}', "spec.argv", "list of strings"),
        (
            b'{"kind": "training", "spec": {"target": "a:b", "cwd": "/nope/x"}}',
            "spec.cwd",
            "spec.cwd",
        ),
    ],
)
async def test_bad_create_bodies_are_400_naming_the_field(api, raw, field, fragment) -> None:
    code, err = await api("POST", "jobs", raw=raw)
    assert code == 400 and err["field"] == field and fragment in err["error"]
    code, page = await api("GET", "jobs")
    assert page["jobs"] == []  # nothing half-written


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"epochs": -1}, "spec.config.epochs"),
        ({"optimizer": "lbfgs"}, "spec.config.optimizer"),
        ({"learning_rate": "fast"}, "spec.config.learning_rate"),
        ({"mode": 1}, "spec.config.mode"),
    ],
)
async def test_bad_demo_config_names_the_field(api, config, field) -> None:
    body = {"kind": "training", "spec": {**DEMO["spec"], "config": {**SEED, **config}}}
    code, err = await api("POST", "jobs", body=body)
    assert code == 400 and err["field"] == field


async def test_huge_body_is_413(api) -> None:
    body = {"kind": "command", "spec": {"argv": ["x" * 1000] * 1100}}
    code, err = await api("POST", "jobs", body=body)
    assert code == 413 and "larger than" in err["error"]


async def test_list_paging_and_filters(api) -> None:
    ids = []
    for i in range(7):
        code, job = await api(
            "POST", "jobs", body={"kind": "command", "spec": {"argv": ["true"]}, "name": f"n{i}"}
        )
        ids.append(job["id"])
    seen, cursor = [], None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        code, page = await api("GET", "jobs", params=params)
        assert code == 200
        seen += [j["id"] for j in page["jobs"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    await api("POST", "jobs", ids[0], "stop")
    code, page = await api("GET", "jobs", params={"status": "cancelled"})
    assert [j["id"] for j in page["jobs"]] == [ids[0]]
    code, page = await api("GET", "jobs", params={"status": "pending,cancelled", "kind": "command"})
    assert len(page["jobs"]) == 7
    for params, field in [
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"status": "sleeping"}, "status"),
        ({"kind": "nope"}, "kind"),
        ({"cursor": "%%%"}, "cursor"),
    ]:
        code, err = await api("GET", "jobs", params=params)
        assert code == 400 and err["field"] == field, params


async def test_get_delete_and_unknown(api) -> None:
    code, job = await api("POST", "jobs", body=COOP)
    code, got = await api("GET", "jobs", job["id"])
    assert code == 200 and got["id"] == job["id"] and got["kind"] == "training"
    code, err = await api("GET", "jobs", "0" * 32)
    assert code == 404 and "No job" in err["error"]
    code, _ = await api("POST", "jobs", job["id"], "start")
    code, err = await api("DELETE", "jobs", job["id"])
    assert code == 409 and "stop it" in err["error"]
    await api("POST", "jobs", job["id"], "stop")
    await _wait_api(api, job["id"], *TERMINAL)
    code, body = await api("DELETE", "jobs", job["id"])
    assert code == 204 and body is None
    code, _ = await api("GET", "jobs", job["id"])
    assert code == 404
    code, err = await api("GET", "nothing", "here")
    assert code == 404 and "no jobctl API route" in err["error"]
    code, err = await api("PUT", "jobs", raw=b"{}")
    assert code == 405 and "error" in err


async def test_start_pause_resume_conflicts(api) -> None:
    code, job = await api("POST", "jobs", body={**COOP, "start": True})
    code, err = await api("POST", "jobs", job["id"], "start")
    assert code == 409 and err["status"] in ("initializing", "running")
    await _wait_api(api, job["id"], "running")
    code, err = await api("POST", "jobs", job["id"], "resume")
    assert code == 409 and err["status"] == "running"
    code, paused = await api("POST", "jobs", job["id"], "pause")
    assert code == 200 and paused["status"] == "paused"
    code, resumed = await api("POST", "jobs", job["id"], "resume")
    assert code == 200 and resumed["status"] == "running"
    code, _ = await api("POST", "jobs", job["id"], "stop")
    code2, again = await api("POST", "jobs", job["id"], "stop")
    assert (code, code2) == (202, 202) and again["status"] in ("stopping", "cancelled")
    await _wait_api(api, job["id"], *TERMINAL)


async def test_events_paging(api) -> None:
    code, job = await api(
        "POST",
        "jobs",
        body={
            "kind": "command",
            "spec": {"argv": ["python", "-c", "print('\\n'.join(str(i) for i in range(30)))"]},
            "start": True,
        },
    )
    await _wait_api(api, job["id"], *TERMINAL)
    code, page = await api("GET", "jobs", job["id"], "events", params={"after": "2", "limit": "5"})
    assert code == 200 and [e["seq"] for e in page["events"]] == [3, 4, 5, 6, 7]
    assert page["next"] == 7
    code, page = await api("GET", "jobs", job["id"], "events", params={"type": "status"})
    assert [e["data"]["status"] for e in page["events"]][-1] == "completed"
    assert page["next"] is None
    for params, field in [
        ({"after": "-1"}, "after"),
        ({"limit": "5000"}, "limit"),
        ({"type": "gossip"}, "type"),
    ]:
        code, err = await api("GET", "jobs", job["id"], "events", params=params)
        assert code == 400 and err["field"] == field
    code, err = await api("GET", "jobs", "0" * 32, "events")
    assert code == 404


async def test_results_batches_and_rerun(api, server_manager) -> None:
    code, job = await api("POST", "jobs", body={"kind": "test_batch", "spec": {"args": ["-q"]}})
    # a finished batch with recorded results (the pytest plugin writes these in real runs)
    server_manager.store.append_events(
        job["id"],
        None,
        [
            ("result", {"nodeid": "t.py::a", "outcome": "passed", "duration": 0.1}),
            ("result", {"nodeid": "t.py::b", "outcome": "failed", "duration": 0.2, "message": "x"}),
            ("result", {"nodeid": "t.py::c", "outcome": "error", "duration": 0.0}),
        ],
    )
    code, page = await api("GET", "jobs", job["id"], "results")
    assert code == 200 and [r["nodeid"] for r in page["results"]] == [
        "t.py::a",
        "t.py::b",
        "t.py::c",
    ]
    code, page = await api("GET", "jobs", job["id"], "results", params={"outcome": "failed"})
    assert [r["nodeid"] for r in page["results"]] == ["t.py::b"]
    code, err = await api("GET", "jobs", job["id"], "results", params={"outcome": "meh"})
    assert code == 400 and err["field"] == "outcome"
    code, batches = await api("GET", "batches", "active")
    assert code == 200 and batches == []
    await api("POST", "jobs", job["id"], "stop")
    code, rerun = await api("POST", "jobs", job["id"], "rerun", body={"only": "failed"})
    assert code == 201 and rerun["spec"]["args"] == ["-q", "t.py::b", "t.py::c"]  # options kept
    assert rerun["status"] == "initializing"
    code, batches = await api("GET", "batches", "active")
    assert code == 200 and [b["batch_id"] for b in batches] == [rerun["id"]]
    assert set(batches[0]) == {
        "batch_id",
        "name",
        "start_time",
        "total_count",
        "completed_count",
        "pass_count",
        "fail_count",
        "status",
        "eta_s",
    }
    code, err = await api("POST", "jobs", job["id"], "rerun", body={"only": "everything"})
    assert code == 400 and err["field"] == "only"
    code, plain = await api("POST", "jobs", job["id"], "rerun")
    assert code == 201 and plain["spec"]["args"] == ["-q"]
    for j in (rerun, plain):
        await api("POST", "jobs", j["id"], "stop")
        await _wait_api(api, j["id"], *TERMINAL)


async def test_openapi_document_is_served(api) -> None:
    code, doc = await api("GET", "openapi.json")
    assert code == 200 and doc["openapi"].startswith("3.") and "/jobs/{job_id}/stop" in doc["paths"]


async def test_event_loop_is_not_blocked(api, server_manager) -> None:
    """A big list runs in the thread pool; /health answers meanwhile."""
    import asyncio
    import time

    for i in range(300):
        server_manager.store.create_job("command", f"n{i}", {"argv": ["true"]})

    async def lists() -> None:
        for _ in range(10):
            code, _ = await api("GET", "jobs", params={"limit": "1000"})
            assert code == 200

    task = asyncio.ensure_future(lists())
    samples = []
    while not task.done():
        t = time.perf_counter()
        _, _ = await api("GET", "health")
        samples.append(time.perf_counter() - t)
        await asyncio.sleep(0.005)
    await task
    assert samples and max(samples) < 2.0
