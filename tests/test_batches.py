"""Test batches: pytest (and nbval, xdist) runs as jobs with one result per test."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_for, wait_status, wait_terminal
from jupyter_jobctl.manager import JobManager

SUITE = Path(__file__).parent / "batch_suite"
EVERY_OUTCOME = ["test_basic.py", "check_notebook.ipynb", "--nbval-lax"]


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    # the store's SQLite/PostgreSQL parity is proven in test_store/test_engine; batches are
    # about pytest, so one backend keeps the suite fast
    return sqlite_url


def batch(args: list[str]) -> dict:
    return {"args": args, "cwd": str(SUITE)}


def results(manager: JobManager, job_id: str) -> list[dict]:
    out, after = [], 0
    while True:
        page, nxt = manager.results(job_id, after=after, limit=1000)
        out += page
        if nxt is None:
            return out
        after = nxt


def pytest_summary(args: list[str]) -> dict[str, int]:
    """What plain pytest says about the same suite: {'passed': 6, 'failed': 1, ...}."""
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args], cwd=SUITE, capture_output=True, text=True
    )
    last = run.stdout.strip().splitlines()[-1]
    counts = {
        word.rstrip("s") if word == "errors" else word: int(n)
        for n, word in re.findall(r"(\d+) (\w+)", last.split(" in ")[0])
    }
    counts.pop("warning", None)
    counts.pop("warnings", None)
    return counts


@pytest.mark.slow
def test_counts_match_pytest_own_summary(manager: JobManager) -> None:
    job, _ = manager.create("test_batch", batch(EVERY_OUTCOME), start=True)
    done = wait_terminal(manager, job["id"], timeout=120)
    assert done["status"] == "completed"  # the suite ran; its failures are results
    expected = pytest_summary(EVERY_OUTCOME)
    summary = [e for e in manager.events(job["id"], limit=1000) if e["type"] == "summary"][-1]
    counts = {k: v for k, v in summary["data"]["counts"].items() if v}
    assert counts == expected
    assert summary["data"]["exit_code"] == 1
    rows = results(manager, job["id"])
    assert len(rows) == sum(expected.values()) == done["counts"]["total"]
    by_id = {r["nodeid"]: r for r in rows}
    assert by_id["test_basic.py::test_fails"]["outcome"] == "failed"
    assert "arithmetic is broken" in by_id["test_basic.py::test_fails"]["message"]
    assert "captured output" in by_id["test_basic.py::test_fails"]["output"]
    assert by_id["test_basic.py::test_error_in_fixture"]["outcome"] == "error"
    assert by_id["test_basic.py::test_xfail"]["outcome"] == "xfailed"
    assert by_id["test_basic.py::test_xpass"]["outcome"] == "xpassed"
    assert by_id["check_notebook.ipynb::Cell 1"]["outcome"] == "passed"
    assert done["counts"] == {"total": 11, "completed": 11, "passed": 7, "failed": 2, "skipped": 2}
    assert done["progress"]["done"] == 11 and done["progress"]["unit"] == "test"
    collection = [e for e in manager.events(job["id"], limit=1000) if e["type"] == "collection"]
    assert collection[0]["data"] == {"total": 11}
    failed, _ = manager.results(job["id"], outcome="failed")
    assert [r["nodeid"] for r in failed] == ["test_basic.py::test_fails"]


@pytest.mark.slow
def test_xdist_results_arrive_through_the_controller(manager: JobManager) -> None:
    job, _ = manager.create("test_batch", batch(["test_basic.py", "-n", "2"]), start=True)
    done = wait_terminal(manager, job["id"], timeout=120)
    assert done["status"] == "completed"
    rows = results(manager, job["id"])
    assert sorted(r["nodeid"] for r in rows) == sorted({r["nodeid"] for r in rows})
    assert len(rows) == 9 == done["counts"]["completed"]
    assert {r["outcome"] for r in rows} == {
        "passed",
        "failed",
        "skipped",
        "error",
        "xfailed",
        "xpassed",
    }


@pytest.mark.slow
def test_rerun_failed_runs_only_the_failures(manager: JobManager) -> None:
    job, _ = manager.create("test_batch", batch(["test_basic.py", "-k", "not slow"]), start=True)
    wait_terminal(manager, job["id"], timeout=60)
    rerun = manager.rerun(job["id"], "failed")
    assert rerun["spec"]["args"] == [
        "-k",
        "not slow",
        "test_basic.py::test_fails",
        "test_basic.py::test_error_in_fixture",
    ]
    wait_terminal(manager, rerun["id"], timeout=60)
    assert sorted(r["nodeid"] for r in results(manager, rerun["id"])) == [
        "test_basic.py::test_error_in_fixture",
        "test_basic.py::test_fails",
    ]
    again = manager.rerun(job["id"])
    assert again["spec"]["args"] == ["test_basic.py", "-k", "not slow"]
    wait_terminal(manager, again["id"], timeout=60)


def test_stop_mid_batch_keeps_partial_results(manager: JobManager) -> None:
    job, _ = manager.create("test_batch", batch(["slow"]), start=True)
    wait_for(lambda: manager.get(job["id"])["counts"]["completed"] >= 3, 60, "some results")
    manager.stop(job["id"])
    done = wait_terminal(manager, job["id"], timeout=30)
    assert done["status"] == "cancelled"
    rows = results(manager, job["id"])
    assert 3 <= len(rows) < 40 and done["counts"]["completed"] == len(rows)
    assert done["counts"]["total"] == 40


@pytest.mark.parametrize(
    ("args", "log_fragment", "summary_error"),
    [
        (["no/such/dir"], "file or directory not found: no/such/dir", "usage error"),
        (["broken"], "SyntaxError", "interrupted"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option", "usage error"),
    ],
)
def test_bad_input_fails_with_pytest_message(
    manager: JobManager, args, log_fragment, summary_error
) -> None:
    job, _ = manager.create("test_batch", batch(args), start=True)
    done = wait_terminal(manager, job["id"], timeout=60)
    assert done["status"] == "failed" and "pytest exit code" in done["reason"]
    events = manager.events(job["id"], limit=1000)
    assert any(log_fragment in e["data"]["line"] for e in events if e["type"] == "log")
    summary = [e for e in events if e["type"] == "summary"]
    assert len(summary) == 1 and summary_error in summary[0]["data"]["error"]


@pytest.mark.slow
def test_two_thousand_tests_are_all_stored(manager: JobManager, tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (tmp_path / "test_many.py").write_text(
        "import pytest\n\n@pytest.mark.parametrize('i', range(2000))\ndef test_i(i):\n"
        "    assert i >= 0\n"
    )
    job, _ = manager.create("test_batch", {"args": ["-q"], "cwd": str(tmp_path)}, start=True)
    wait_status(manager, job["id"], "running")
    t0 = time.monotonic()
    done = wait_terminal(manager, job["id"], timeout=120)
    elapsed = time.monotonic() - t0
    rows = results(manager, job["id"])
    assert done["status"] == "completed" and len(rows) == 2000
    assert len({r["nodeid"] for r in rows}) == 2000
    assert done["counts"] == {
        "total": 2000,
        "completed": 2000,
        "passed": 2000,
        "failed": 0,
        "skipped": 0,
    }
    print(f"\n2000-test batch: {2000 / elapsed:.0f} results/s end to end")


@pytest.mark.slow
def test_restored_after_server_kill(real_server) -> None:
    """kill -9 the server mid-batch: still active after restart; the stream replays it all."""
    first = real_server()
    code, job = first.request(
        "POST", "/jobs", {"kind": "test_batch", "spec": batch(["long"]), "start": True}
    )
    assert code == 201
    wait_for(
        lambda: first.request("GET", f"/jobs/{job['id']}")[1]["counts"]["completed"] >= 3,
        60,
        "some results",
    )
    first.kill()
    second = real_server()  # a minute of tests left: still running however slow the restart
    code, active = second.request("GET", "/batches/active")
    assert code == 200 and [b["batch_id"] for b in active] == [job["id"]]
    assert active[0]["total_count"] == 600 and active[0]["status"] == "running"
    assert active[0]["completed_count"] >= 3
    code, _ = second.request("POST", f"/jobs/{job['id']}/stop")
    assert code == 202
    frames = asyncio.run(_stream_all(second, job["id"]))
    events = [f for f in frames if f["type"] == "event"]
    assert [f["seq"] for f in events] == list(range(1, len(events) + 1))
    assert frames[-1]["type"] == "done" and frames[-1]["status"] == "cancelled"
    nodeids = [f["data"]["nodeid"] for f in events if f["event"] == "result"]
    final = second.request("GET", f"/jobs/{job['id']}")[1]
    assert len(nodeids) == len(set(nodeids)) == final["counts"]["completed"] >= 3


async def _stream_all(server, job_id: str) -> list[dict]:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    url = f"ws://127.0.0.1:{server.port}/jobctl/api/jobs/{job_id}/stream?after=0"
    ws = await websocket_connect(
        HTTPRequest(url, headers={"Authorization": f"token {server.token}"})
    )
    frames = []
    while True:
        message = await asyncio.wait_for(ws.read_message(), 120)
        if message is None:
            return frames
        frames.append(json.loads(message))
