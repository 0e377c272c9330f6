"""Stop latency by when the stop comes (issue 13 §1): stop → `cancelled`, in-process.

A stop is measured from ``m.stop()`` to the job row reading ``cancelled`` (polled every
2 ms), at several moments of a job's life: ``init`` (at once after create+start returned,
while the job is ``initializing``), and +0, +0.1, +0.3, +1 s after `running` was seen. Three
jobs: ``checkpoint`` (``tests/jobs.py:cooperative``, a checkpoint every 5 ms: the stop must
take the cooperative rung once its code runs, goal p99 < 150 ms at every offset); ``flush
first`` (``cooperative`` whose first statement is ``jc.current().flush()``, which waits for
the database connection: a stop meanwhile must still take the cooperative rung, same goal);
and ``sleep`` (``tests/jobs.py:sleeper``, blocked in ``time.sleep``: only the SIGINT rung
gets it out, goal ``interrupt_after`` + 150 ms). The offsets and the jobs are interleaved
round by round, so every cell sees the same machine noise. Each cell also counts the rung
that ended the job (``coop``: ended at a checkpoint, no signal; ``before GO``: stopped
while it started, the worker ended before the job's code could run; ``SIGINT`` …).

    .venv/bin/python benchmarks/stop_offsets.py              # 20 runs per cell, ~2-3 min
    .venv/bin/python benchmarks/stop_offsets.py --smoke      # 3 runs per cell
    .venv/bin/python benchmarks/stop_offsets.py --runs 30 --db-url postgresql+psycopg://...

``figure()`` returns the rows for another script (the engine benchmark) to print or store.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

from common import percentile  # noqa: E402
from engine_bench import wait_status  # noqa: E402

from jupyter_jobctl.manager import JobManager, StopPolicy  # noqa: E402
from tests.harness import job_pids, kill_pids  # noqa: E402

OFFSETS: tuple[str | float, ...] = ("init", 0.0, 0.1, 0.3, 1.0)
POLICY = StopPolicy(interrupt_after=0.2, stop_grace=1.0, kill_grace=0.5, heartbeat_interval=1.0)
JOBS_DIR = str(REPO / "tests")
JOBS: dict[str, dict[str, Any]] = {
    "checkpoint": {
        "target": "jobs:cooperative",
        "config": {"sleep": 0.005, "progress": False},
        "cwd": JOBS_DIR,
    },
    # its first statement is jc.current().flush(), which waits for the database to open
    "flush first": {
        "target": "jobs:cooperative",
        "config": {"sleep": 0.005, "progress": False, "ready": True},
        "cwd": JOBS_DIR,
    },
    "sleep": {"target": "jobs:sleeper", "config": {"seconds": 60}, "cwd": JOBS_DIR},
}
GOAL_MS = {
    "checkpoint": 150.0,
    "flush first": 150.0,
    "sleep": POLICY.interrupt_after * 1000 + 150.0,
}


def _rung(m: JobManager, job_id: str) -> str:
    lines = [e["data"]["line"] for e in m.events(job_id, limit=1000) if e["type"] == "log"]
    if "[CANCELLATION] stopped before the job's code started" in lines:
        return "before GO"  # the worker was ended before the job's code could start
    signals = [line.split()[2] for line in lines if line.startswith("[STOP] signal")]
    return "+".join(signals) if signals else "coop"


def stop_once(m: JobManager, kind: str, offset: str | float) -> tuple[float | None, str]:
    """One job of ``kind`` stopped at ``offset``: (seconds to `cancelled` or None, rung)."""
    job, _ = m.create("training", JOBS[kind], name=f"{kind} stop at {offset}", start=True)
    if offset != "init":
        row, running = wait_status(m, job["id"], {"running"})
        if row["status"] != "running":
            return None, f"ended {row['status']} before the stop"
        time.sleep(max(0.0, running + float(offset) - time.perf_counter()))
    t1 = time.perf_counter()
    m.stop(job["id"])
    row, done = wait_status(m, job["id"], set())
    if row["status"] != "cancelled":
        return None, f"ended {row['status']}"
    return done - t1, _rung(m, job["id"])


def figure(runs: int = 20, db_url: str | None = None, quiet: bool = False) -> list[dict[str, Any]]:
    """Rows ``{job, offset, n, p50_ms, p99_ms, max_ms, goal_ms, ok, rungs, problems}``."""
    tmp = tempfile.mkdtemp(prefix="jobctl-stop-offsets-")
    url = db_url or f"sqlite:///{tmp}/bench.db"
    m = JobManager(url, policy=POLICY)
    m.warm()
    samples: dict[tuple[str, str | float], list[float]] = {}
    rungs: dict[tuple[str, str | float], Counter[str]] = {}
    try:
        for i in range(runs):
            if not quiet:
                print(f"  round {i + 1}/{runs} (loadavg {os.getloadavg()[0]:.2f})", flush=True)
            for offset in OFFSETS:
                for kind in JOBS:
                    seconds, rung = stop_once(m, kind, offset)
                    rungs.setdefault((kind, offset), Counter())[rung] += 1
                    if seconds is not None:
                        samples.setdefault((kind, offset), []).append(seconds)
    finally:
        for row in m.store.active_rows():
            m.stop(row["id"])
            wait_status(m, row["id"], set())
        m.close()
        kill_pids(job_pids(url))
        shutil.rmtree(tmp, ignore_errors=True)
    out = []
    for kind in JOBS:
        for offset in OFFSETS:
            ms = [s * 1000 for s in samples.get((kind, offset), [])]
            p99 = percentile(ms, 99)
            counted = rungs.get((kind, offset), Counter())
            out.append(
                {
                    "job": kind,
                    "offset": offset if offset == "init" else f"+{offset:g} s",
                    "n": len(ms),
                    "p50_ms": round(percentile(ms, 50), 1),
                    "p99_ms": round(p99, 1),
                    "max_ms": round(max(ms, default=math.nan), 1),
                    "goal_ms": GOAL_MS[kind],
                    "ok": bool(ms) and p99 < GOAL_MS[kind],
                    "rungs": dict(counted),
                    "problems": runs - len(ms),
                }
            )
    return out


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| job | stop at | n | p50 ms | p99 ms | max ms | goal p99 | rungs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rung = ", ".join(f"{k} x{v}" for k, v in sorted(r["rungs"].items()))
        mark = "ok" if r["ok"] else "NOT MET"
        lines.append(
            f"| {r['job']} | {r['offset']} | {r['n']} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} "
            f"| {r['max_ms']:.0f} | < {r['goal_ms']:.0f} {mark} | {rung} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="stops per cell (default 20)")
    parser.add_argument("--smoke", action="store_true", help="3 stops per cell: proof it runs")
    parser.add_argument("--db-url", help="a database URL (default: a fresh SQLite file)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    runs = 3 if args.smoke else args.runs
    print(f"stop offsets: {runs} runs per cell, {POLICY}", flush=True)
    t0 = time.monotonic()
    rows = figure(runs, args.db_url)
    print(table(rows))
    print(f"({time.monotonic() - t0:.0f} s, loadavg {os.getloadavg()[0]:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    # a stop that did not end `cancelled` is a failure whatever the machine; latency is reported
    return 1 if any(r["problems"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
