"""WebSocket streams over a real Jupyter server: snapshot, backlog, live, resume, done."""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest
from tornado.httpclient import HTTPClientError

from conftest import SEED, TESTS_DIR, server_config
from jupyter_jobctl.core.states import TERMINAL


async def read(ws, timeout: float = 30.0) -> dict | None:
    message = await asyncio.wait_for(ws.read_message(), timeout)
    return None if message is None else json.loads(message)


async def read_until(ws, predicate, timeout: float = 30.0) -> list[dict]:
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        frame = await read(ws, max(0.1, deadline - time.monotonic()))
        assert frame is not None, f"stream closed early after {frames[-3:]}"
        frames.append(frame)
        if predicate(frame):
            return frames


def lines_of(frames: list[dict]) -> list[str]:
    return [f["data"]["line"] for f in frames if f.get("event") == "log"]


async def test_seed_scenario_over_the_stream(jp_fetch, jp_ws_fetch) -> None:
    body = {
        "kind": "training",
        "spec": {"target": "jupyter_jobctl.examples.train:main", "config": SEED},
    }
    job = json.loads(
        (await jp_fetch("jobctl", "api", "jobs", method="POST", body=json.dumps(body))).body
    )
    assert job["status"] == "pending"
    ws = await jp_ws_fetch("jobctl", "api", "jobs", job["id"], "stream")
    snapshot = await read(ws)
    assert snapshot["type"] == "snapshot" and snapshot["job"]["id"] == job["id"]
    await jp_fetch("jobctl", "api", "jobs", job["id"], "start", method="POST", body=b"{}")
    frames = await read_until(ws, lambda f: "epoch 1/5" in f.get("data", {}).get("line", ""))
    assert any(f.get("data", {}).get("status") == "running" for f in frames)

    t0 = time.monotonic()
    r = await jp_fetch("jobctl", "api", "jobs", job["id"], "stop", method="POST", body=b"{}")
    assert r.code == 202 and time.monotonic() - t0 < 2.0
    frames += await read_until(ws, lambda f: f["type"] == "done")
    statuses = [f["data"]["status"] for f in frames if f.get("event") == "status"]
    assert statuses[-2:] == ["stopping", "cancelled"]
    assert frames[-1] == {"type": "done", "status": "cancelled", "last_seq": frames[-2]["seq"]}
    lines = lines_of(frames)
    assert "[STOP] Stop request received" in lines
    assert any(line.startswith("[CANCELLATION]") for line in lines)
    seqs = [f["seq"] for f in frames if f["type"] == "event"]
    assert seqs == list(range(1, len(seqs) + 1))
    assert await read(ws) is None  # closed after done


async def test_pre_upgrade_errors(jp_ws_fetch) -> None:
    with pytest.raises(HTTPClientError) as err:
        await jp_ws_fetch("jobctl", "api", "jobs", "0" * 32, "stream")
    assert err.value.code == 404
    for after in ("-1", "abc"):
        with pytest.raises(HTTPClientError) as err:
            await jp_ws_fetch("jobctl", "api", "jobs", "0" * 32, "stream", params={"after": after})
        assert err.value.code == 400


async def test_after_beyond_last_seq_resets(jp_ws_fetch, server_manager) -> None:
    job, _ = server_manager.create("command", {"argv": ["true"]})
    ws = await jp_ws_fetch("jobctl", "api", "jobs", job["id"], "stream", params={"after": "99"})
    assert (await read(ws))["type"] == "reset"
    assert (await read(ws))["type"] == "snapshot"
    first = await read(ws)
    assert first["type"] == "event" and first["seq"] == 1
    ws.close()


@pytest.fixture
def jp_server_config(sqlite_url):
    config = server_config(sqlite_url)
    config["JobCtl"]["stream_heartbeat"] = 0.3
    return config


async def test_heartbeats_carry_last_seq(jp_ws_fetch, server_manager) -> None:
    job, _ = server_manager.create("command", {"argv": ["true"]})
    ws = await jp_ws_fetch("jobctl", "api", "jobs", job["id"], "stream")
    frames = await read_until(ws, lambda f: f["type"] == "heartbeat", timeout=10)
    assert frames[-1] == {"type": "heartbeat", "last_seq": 1}
    ws.close()


async def test_resume_under_random_disconnects(jp_fetch, jp_ws_fetch) -> None:
    """Five clients drop the connection at random and resume: no gap, no duplicate."""
    spec = {
        "target": "jobs:chatty",
        "config": {"seconds": 30, "count": 4000},
        "cwd": str(TESTS_DIR),
    }
    job = json.loads(
        (
            await jp_fetch(
                "jobctl",
                "api",
                "jobs",
                method="POST",
                body=json.dumps({"kind": "training", "spec": spec, "start": True}),
            )
        ).body
    )
    rng = random.Random(7)

    async def client() -> tuple[list[int], int, str]:
        seen: list[int] = []
        reconnects = 0
        while True:
            after = seen[-1] if seen else 0
            ws = await jp_ws_fetch(
                "jobctl", "api", "jobs", job["id"], "stream", params={"after": str(after)}
            )
            budget = rng.randint(1, 3000)
            while True:
                frame = await read(ws)
                assert frame is not None
                if frame["type"] == "event":
                    seen.append(frame["seq"])
                    budget -= 1
                    if budget == 0:
                        ws.close()
                        reconnects += 1
                        break
                elif frame["type"] == "done":
                    return seen, reconnects, frame["status"]

    results = await asyncio.gather(*(client() for _ in range(5)))
    final = json.loads((await jp_fetch("jobctl", "api", "jobs", job["id"])).body)
    assert final["status"] == "completed"
    for seen, _reconnects, status in results:
        assert status == "completed"
        assert seen == list(range(1, final["last_seq"] + 1))  # exactly once, in order
    assert sum(r for _, r, _ in results) >= 5
    assert final["last_seq"] > 8000


async def test_list_stream_announces_changes(jp_fetch, jp_ws_fetch, server_manager) -> None:
    ws = await jp_ws_fetch("jobctl", "api", "stream")
    job = json.loads(
        (
            await jp_fetch(
                "jobctl",
                "api",
                "jobs",
                method="POST",
                body=json.dumps({"kind": "command", "spec": {"argv": ["true"]}, "start": True}),
            )
        ).body
    )
    frames = await read_until(
        ws,
        lambda f: (
            f["type"] == "job" and f["job"]["id"] == job["id"] and f["job"]["status"] in TERMINAL
        ),
    )
    seen = [f["job"]["status"] for f in frames if f["type"] == "job"]
    assert seen[-1] == "completed"
    await jp_fetch("jobctl", "api", "jobs", job["id"], method="DELETE")
    frames = await read_until(ws, lambda f: f["type"] == "deleted")
    assert frames[-1] == {"type": "deleted", "id": job["id"]}
    ws.close()


async def test_job_started_elsewhere_streams_live(jp_ws_fetch, sqlite_url) -> None:
    """A job created by another manager (a CLI, another server) reaches this server's clients."""
    from conftest import FAST_POLICY
    from jupyter_jobctl.manager import JobManager

    other = JobManager(sqlite_url, policy=FAST_POLICY)
    try:
        spec = {"target": "jobs:cooperative", "cwd": str(TESTS_DIR)}
        job, _ = other.create("training", spec, start=True)
        ws = await jp_ws_fetch("jobctl", "api", "jobs", job["id"], "stream")
        await read_until(ws, lambda f: f.get("event") == "progress")
        other.stop(job["id"])
        frames = await read_until(ws, lambda f: f["type"] == "done")
        assert frames[-1]["status"] == "cancelled"
    finally:
        other.close()


async def test_slow_consumer_is_closed(jp_ws_fetch, server_manager, jp_serverapp) -> None:
    jp_serverapp.web_app.settings["jobctl_send_timeout"] = 0.5
    job, _ = server_manager.create("command", {"argv": ["true"]})
    for _ in range(10):
        server_manager.store.append_events(
            job["id"], None, [("log", {"line": "x" * 8000, "stream": "stdout"}) for _ in range(500)]
        )
    ws = await jp_ws_fetch("jobctl", "api", "jobs", job["id"], "stream")
    await asyncio.sleep(3)  # do not read: the server must give up on us, not buffer forever
    got = 0
    while await asyncio.wait_for(ws.read_message(), 30) is not None:
        got += 1
    assert ws.close_code == 1013
    assert got < 5001


def test_shared_tail_serves_only_a_contiguous_window() -> None:
    from jupyter_jobctl.server import frames as raw
    from jupyter_jobctl.server import hub

    tail = hub.Tail(last_seq=10)
    assert tail.after(10, 5) == [] and tail.after(9, 5) is None  # nothing new; 10 is behind
    frames = raw.event_frames("j", [(s, "log", 0.0, '{"line":"x"}') for s in range(11, 21)])
    tail.extend(frames)
    assert (tail.first, tail.last) == (11, 20)
    assert tail.after(12, 3) == frames[2:5]  # seqs 13, 14, 15
    assert json.loads(raw.frame_payload(tail.after(19, 5)[0]))["seq"] == 20
    big = raw.event_frames("j", [(s, "log", 0.0, '"' + "y" * 1000 + '"') for s in range(21, 3000)])
    tail.extend(big)
    assert tail.size <= hub.TAIL_BYTES and tail.last == 2999 and tail.first > 11
    assert tail.after(15, 5) is None  # trimmed: that reader goes to the database
    assert json.loads(raw.frame_payload(tail.after(tail.first - 1, 1)[0]))["seq"] == tail.first


def test_text_frames_have_the_right_length_header() -> None:
    from jupyter_jobctl.server import frames as raw

    for size in (0, 125, 126, 65535, 65536, 70000):
        payload = b"a" * size
        frame = raw.text_frame(payload)
        assert frame[0] == 0x81 and raw.frame_payload(frame) == payload


def test_event_frames_are_valid_json_whatever_the_type() -> None:
    from jupyter_jobctl.server import frames as raw

    rows = [(1, 'od"d\\type', 1_763_900_000.5, '{"x": [1, "two"]}'), (2, "log", 0.0, '"s"')]
    frames = [json.loads(raw.frame_payload(f)) for f in raw.event_frames("j1", rows)]
    assert frames[0] == {
        "type": "event",
        "job": "j1",
        "seq": 1,
        "event": 'od"d\\type',
        "ts": "2025-11-23T12:13:20.500Z",
        "data": {"x": [1, "two"]},
    }
    assert frames[1]["event"] == "log" and frames[1]["data"] == "s"
