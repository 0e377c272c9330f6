"""Test-batch benchmark: results stored per second, the wall time against plain pytest,
and the restore of a finished batch over the stream.

Run from the repository root:

    .venv/bin/python benchmarks/batch_bench.py            # 2 000 tests, 10 000-result restore
    .venv/bin/python benchmarks/batch_bench.py --smoke    # tiny sizes, seconds

1. A batch of N trivial (parametrized) tests as a jobctl `test_batch` job: results stored
   per second while running, and its create -> completed wall time against plain `pytest`
   on the same suite, interleaved, the median of R repeats each.
2. Restore: a finished batch with M result events; a WebSocket client of a real
   `jupyter server` connects with `after=0` and receives the snapshot, every result and
   `done`. Connect -> `done`, over K reconnects; gaps and duplicates are checked.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    TERMINAL,
    JupyterServer,
    Line,
    Report,
    finish,
    jobctl_options,
    latency,
    parse,
    rate,
    recorded,
    wait_for,
    ws_connect,
)

from jupyter_jobctl.manager import JobManager


@dataclass
class Sizes:
    tests: int = 2000
    repeats: int = 3
    results: int = 10_000
    restores: int = 20


SMOKE = Sizes(tests=100, repeats=1, results=500, restores=3)


def plain_pytest(suite: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q"], cwd=suite, check=True, capture_output=True
    )
    return time.perf_counter() - t0


def jobctl_batch(m: JobManager, suite: Path, n: int) -> tuple[float, float]:
    """(create -> completed wall time, results/s while running) for one batch."""
    t0 = time.perf_counter()
    job, _ = m.create("test_batch", {"args": ["-q"], "cwd": str(suite)}, start=True)
    wait_for(lambda: m.get(job["id"])["status"] != "initializing", 120, "the batch to run")
    t_run = time.perf_counter()
    row = wait_for(lambda: (j := m.get(job["id"]))["status"] in TERMINAL and j, 600, "the end")
    t_end = time.perf_counter()
    if row["status"] != "completed" or row["counts"]["completed"] != n:
        raise RuntimeError(f"the batch ended {row['status']} with counts {row['counts']}")
    return t_end - t0, n / (t_end - t_run)


def finished_batch(db_url: str, results: int) -> str:
    """A completed batch job with ``results`` result events, written through the store."""
    m = JobManager(db_url)
    job, _ = m.create("test_batch", {"args": ["-q"]})
    store = m.store
    store.start_job(
        job["id"], interrupt_after=0.5, stop_grace=3, kill_grace=2, heartbeat_interval=1
    )
    store.append_events(job["id"], 1, [("collection", {"total": results})])
    for start in range(0, results, 1000):
        chunk = range(start, min(results, start + 1000))
        result = {"outcome": "passed", "duration": 0.001}
        events = [("result", {"nodeid": f"tests/test_x.py::test_{i}", **result}) for i in chunk]
        store.append_events(job["id"], 1, events)
    store.mark_running(job["id"], 1)
    store.finish(job["id"], 1, "completed", exit_code=0)
    m.close()
    return job["id"]


async def restore_once(server: JupyterServer, job_id: str) -> tuple[float, int, int]:
    """(seconds from connect to done, events, gaps + duplicates)."""
    t0 = time.perf_counter()
    ws = await ws_connect(server, f"/jobs/{job_id}/stream?after=0")
    last = wrong = count = 0
    while (message := await ws.read_message()) is not None:
        frame = json.loads(message)
        if frame["type"] == "event":
            count += 1
            wrong += frame["seq"] != last + 1
            last = max(last, frame["seq"])
        elif frame["type"] == "done":
            ws.close()
            return time.perf_counter() - t0, count, wrong + (frame["last_seq"] != last)
    raise RuntimeError("the stream closed before done")


def rows(doc: dict[str, Any], backend: str) -> list[Line]:
    if "restore" not in doc["figures"]:
        return []
    sizes, checks = doc["sizes"], doc["checks"]
    note = (
        f"{rate(sizes['tests'])}-test batch: {rate(checks.get('results_per_s'))} results/s "
        f"stored, {checks.get('overhead_ratio', float('nan')):.2f}x plain pytest's wall time"
    )
    what = f"reconnect to a {rate(sizes['results'])}-result batch → `done`"
    return [latency(7, what, backend, doc["figures"]["restore"], 300, note)]


def main(argv: list[str] | None = None) -> int:
    args = parse(__doc__, Sizes(), SMOKE, argv=argv)
    sizes, report = args.sizes, Report()
    root = Path(tempfile.mkdtemp(prefix="jobctl-batch-bench-"))
    suite = root / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (suite / "test_many.py").write_text(
        f"import pytest\n\n@pytest.mark.parametrize('i', range({sizes.tests}))\n"
        "def test_i(i):\n    assert i >= 0\n"
    )
    server = JupyterServer(root / "server", jobctl_options(f"sqlite:///{root / 'restore.db'}"))
    try:
        with recorded(report):
            m = JobManager(f"sqlite:///{root / 'batch.db'}")
            plain, ours, rates = [], [], []
            try:
                for _ in range(sizes.repeats):  # interleaved: both see the same machine noise
                    plain.append(plain_pytest(suite))
                    wall, per_s = jobctl_batch(m, suite, sizes.tests)
                    ours.append(wall)
                    rates.append(per_s)
            finally:
                m.close()
            report.check("plain_pytest_s", round(statistics.median(plain), 2))
            report.check("jobctl_batch_s", round(statistics.median(ours), 2))
            report.check(
                "overhead_ratio", round(statistics.median(ours) / statistics.median(plain), 3)
            )
            report.check("results_per_s", round(statistics.median(rates)))
            job_id = finished_batch(f"sqlite:///{root / 'restore.db'}", sizes.results)
            server.start()
            for _ in range(sizes.restores):
                seconds, count, wrong = asyncio.run(restore_once(server, job_id))
                report.add("restore", seconds)
                if count < sizes.results or wrong:
                    report.problem(f"restore: {count} events, {wrong} gaps or duplicates")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    return finish(report, args, rows)


if __name__ == "__main__":
    sys.exit(main())
