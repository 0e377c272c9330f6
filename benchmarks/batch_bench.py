"""Test-batch benchmark: ingest rate, plugin overhead vs plain pytest, and restore time.

Run from the repository root:

    .venv/bin/python benchmarks/batch_bench.py            # 2 000 tests, 10 000-result restore
    .venv/bin/python benchmarks/batch_bench.py --smoke    # tiny sizes, seconds

1. A batch of N trivial tests (parametrized) as a jobctl ``test_batch`` job: results stored
   per second while running, and its wall time vs plain ``pytest`` on the same suite in the
   same run (interleaved, median of R repeats each) -> overhead ratio.
2. Restore: a finished batch with M result events; a WebSocket client connects with
   ``after=0`` to a real ``jupyter server`` and receives snapshot, every result, ``done``.
   Time from connect to ``done``, p50/p99 over K reconnects, gaps/duplicates checked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import TERMINAL, percentile
from server_bench import Server
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from jupyter_jobctl.manager import JobManager


def write_suite(root: Path, n: int) -> None:
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (root / "test_many.py").write_text(
        "import pytest\n\n"
        f"@pytest.mark.parametrize('i', range({n}))\n"
        "def test_i(i):\n    assert i >= 0\n"
    )


def plain_pytest(root: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q"], cwd=root, check=True, capture_output=True
    )
    return time.perf_counter() - t0


def jobctl_batch(manager: JobManager, root: Path, n: int) -> tuple[float, float]:
    """(create -> completed wall time, results/s while running) for one batch."""
    t0 = time.perf_counter()
    job, _ = manager.create("test_batch", {"args": ["-q"], "cwd": str(root)}, start=True)
    while (status := manager.get(job["id"])["status"]) != "running":
        assert status not in TERMINAL, status
        time.sleep(0.002)
    t_run = time.perf_counter()
    while (row := manager.get(job["id"]))["status"] not in TERMINAL:
        time.sleep(0.005)
    t_end = time.perf_counter()
    assert row["status"] == "completed" and row["counts"]["completed"] == n, row
    return t_end - t0, n / (t_end - t_run)


def fill_finished_batch(db_url: str, results: int) -> str:
    manager = JobManager(db_url)
    job, _ = manager.create("test_batch", {"args": ["-q"]})
    store = manager.store
    store.start_job(
        job["id"], interrupt_after=0.5, stop_grace=3, kill_grace=2, heartbeat_interval=1
    )
    store.append_events(job["id"], 1, [("collection", {"total": results})])
    for start in range(0, results, 1000):
        store.append_events(
            job["id"],
            1,
            [
                (
                    "result",
                    {
                        "nodeid": f"tests/test_x.py::test_{i}",
                        "outcome": "passed",
                        "duration": 0.001,
                    },
                )
                for i in range(start, min(results, start + 1000))
            ],
        )
    store.mark_running(job["id"], 1)
    store.finish(job["id"], 1, "completed", exit_code=0)
    manager.close()
    return job["id"]


async def restore_once(server: Server, job_id: str) -> tuple[float, int, int, int]:
    """Seconds from connect to done, events, gaps, duplicates."""
    t0 = time.perf_counter()
    ws = await websocket_connect(
        HTTPRequest(f"{server.ws_base}/jobs/{job_id}/stream?after=0", headers=server.auth)
    )
    last = gaps = dups = count = 0
    while True:
        message = await ws.read_message()
        assert message is not None, "stream closed before done"
        frame = json.loads(message)
        if frame["type"] == "event":
            count += 1
            if frame["seq"] <= last:
                dups += 1
            elif frame["seq"] != last + 1:
                gaps += 1
            last = max(last, frame["seq"])
        elif frame["type"] == "done":
            ws.close()
            assert frame["last_seq"] == last, (frame, last)
            return time.perf_counter() - t0, count, gaps, dups


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tests", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--results", type=int, default=10_000)
    p.add_argument("--restores", type=int, default=20)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if args.smoke:
        args.tests, args.repeats, args.results, args.restores = 100, 1, 500, 3
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="jobctl-batch-bench-") as tmp:
        root = Path(tmp)
        suite = root / "suite"
        suite.mkdir()
        write_suite(suite, args.tests)
        manager = JobManager(f"sqlite:///{root / 'batch.db'}")
        plain, ours, rates = [], [], []
        try:
            for _ in range(args.repeats):  # interleaved: both see the same machine noise
                plain.append(plain_pytest(suite))
                wall, rate = jobctl_batch(manager, suite, args.tests)
                ours.append(wall)
                rates.append(rate)
        finally:
            manager.close()
        out["plain_pytest_s"] = statistics.median(plain)
        out["jobctl_batch_s"] = statistics.median(ours)
        out["overhead_ratio"] = out["jobctl_batch_s"] / out["plain_pytest_s"]
        out["results_per_s"] = statistics.median(rates)
        print(
            f"{args.tests}-test batch: plain pytest {out['plain_pytest_s']:.2f} s, as a jobctl "
            f"batch {out['jobctl_batch_s']:.2f} s (create -> completed) = "
            f"{out['overhead_ratio']:.2f}x; {out['results_per_s']:.0f} results/s stored"
        )

        server = Server(root / "server")
        server.root.mkdir()
        job_id = fill_finished_batch(server.db_url, args.results)
        server.start()
        try:
            runs = [asyncio.run(restore_once(server, job_id)) for _ in range(args.restores)]
        finally:
            server.stop()
        times = [r[0] * 1000 for r in runs]
        # every result plus the status, collection events: all of them, in order
        assert all(r[1] >= args.results for r in runs), [r[1] for r in runs]
        assert all(r[2] == r[3] == 0 for r in runs)
        out["restore_p50_ms"] = percentile(times, 50)
        out["restore_p99_ms"] = percentile(times, 99)
        print(
            f"restore of a {args.results}-result batch over the stream (connect -> done), "
            f"n={len(times)}: p50 {out['restore_p50_ms']:.0f} ms, p99 "
            f"{out['restore_p99_ms']:.0f} ms; 0 gaps, 0 duplicates"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
