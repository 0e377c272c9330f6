"""Engine benchmark, in-process (no server): create+start -> `running`; stop at +0, +0.1,
+0.3 and +1 s after `running` -> `cancelled`; the `m.stop()` call; and the per-iteration
cost of `job.progress()` + `checkpoint()` against tqdm and a bare loop.

Run from the repository root:

    .venv/bin/python benchmarks/engine_bench.py             # 30 runs per offset
    .venv/bin/python benchmarks/engine_bench.py --smoke     # tiny sizes, seconds
    .venv/bin/python benchmarks/engine_bench.py --runs 5 --db-url postgresql+psycopg://...

The job is `tests/jobs.py:cooperative` checkpointing every 5 ms; the manager polls the
database every 2 ms. The offsets are interleaved round by round, so every one sees the
same machine noise; the per-iteration loops run first, while no job runs, in rotated
order. Every job started ends terminal; any still active is stopped in a `finally`.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from common import (
    TERMINAL,
    TIMEOUT,
    Line,
    Report,
    finish,
    latency,
    parse,
    percentile,
    recorded,
    target,
    verdict,
)

from jupyter_jobctl import runtime as jc
from jupyter_jobctl.manager import JobManager, StopPolicy
from tests.harness import job_pids, kill_pids

OFFSETS = (0.0, 0.1, 0.3, 1.0)  # seconds after `running` was seen
POLL = 0.002
POLICY = StopPolicy(interrupt_after=0.2, stop_grace=0.5, kill_grace=0.3, heartbeat_interval=1.0)
COOPERATIVE = target("cooperative", sleep=0.005, progress=False)


@dataclass
class Sizes:
    runs: int = 30  # stop runs per offset (each one also a start sample)
    iterations: int = 200_000  # loop steps per per-iteration sample
    repeats: int = 5  # per-iteration samples per loop


SMOKE = Sizes(runs=1, iterations=20_000, repeats=3)


def wait_status(m: JobManager, job_id: str, wanted: set[str]) -> tuple[dict[str, Any], float]:
    """Poll until the status is in ``wanted`` (or terminal); (the job, perf time seen)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        job = m.get(job_id)
        seen = time.perf_counter()
        if job["status"] in wanted | TERMINAL or time.monotonic() > deadline:
            return job, seen
        time.sleep(POLL)


def stop_run(m: JobManager, report: Report, offset: float, rungs: Counter[str]) -> None:
    """create+start -> running (a start sample), then stop ``offset`` s later -> cancelled."""
    t0 = time.perf_counter()
    job, _ = m.create("training", COOPERATIVE, name=f"stop at +{offset:g}", start=True)
    row, running = wait_status(m, job["id"], {"running"})
    if row["status"] != "running":
        report.problem(f"job {job['id']} ended {row['status']} ({row.get('reason')}), not running")
        return
    report.add("start", running - t0)
    time.sleep(max(0.0, running + offset - time.perf_counter()))  # the figure's offset
    t1 = time.perf_counter()
    m.stop(job["id"])
    report.add("stop_call", time.perf_counter() - t1)
    row, done = wait_status(m, job["id"], set(TERMINAL))
    rungs[f"+{offset:g} {row['status']} exit={row.get('exit_code')} {row.get('signal')}"] += 1
    if row["status"] != "cancelled":
        report.problem(f"stop at +{offset:g}: job {job['id']} ended {row['status']}")
        return
    report.add(f"stop_at_{offset:g}", done - t1)


def loop_job(job: Any, n: int) -> None:
    for _ in job.progress(range(n)):
        job.checkpoint()


def loop_bare(n: int) -> None:
    x = 0
    for i in range(n):
        x += i


def loop_tqdm(n: int) -> None:
    from tqdm import tqdm

    with open(os.devnull, "w") as sink:
        for _ in tqdm(range(n), file=sink):
            pass


def per_iteration(m: JobManager, report: Report, sizes: Sizes) -> None:
    """ns per step of each loop, ``repeats`` samples each, the order rotated every time."""
    n = sizes.iterations
    row, _ = m.create("training", COOPERATIVE, name="per-iteration")  # pending: attached here
    loops = {"bare": loop_bare, "standin": lambda k: loop_job(jc.current(), k)}
    if importlib.util.find_spec("tqdm"):
        loops["tqdm"] = loop_tqdm
    job = jc.attach(row["id"], 0, m.db_url, {})
    loops["jobctl"] = lambda k: loop_job(job, k)
    ns: dict[str, list[float]] = {name: [] for name in loops}
    try:
        for rep in range(sizes.repeats):
            names = list(loops)[rep % len(loops) :] + list(loops)[: rep % len(loops)]
            for name in names:
                gc.collect()
                t0 = time.perf_counter_ns()
                loops[name](n)
                ns[name].append((time.perf_counter_ns() - t0) / n)
    finally:
        jc.detach()
    report.check("per_iteration_ns", {k: round(percentile(v, 50), 1) for k, v in ns.items()})
    progress = [e for e in m.events(row["id"], limit=1000) if e["type"] == "progress"]
    if not progress or progress[-1]["data"].get("done") != n:
        report.problem(f"per-iteration: the attached job's last progress is not done={n}")
    m.stop(row["id"])


def rows(doc: dict[str, Any], backend: str) -> list[Line]:
    fig, out = doc["figures"], []
    for offset in OFFSETS:
        if (key := f"stop_at_{offset:g}") in fig:
            what = f"stop at +{offset:g} s after `running` → `cancelled`, in-process (polls the DB)"
            out.append(latency(1, what, backend, fig[key], 150))
    if "stop_call" in fig:
        out.append(latency(2, "`m.stop()` call, in-process", backend, fig["stop_call"]))
    if "start" in fig:
        what = "create+start → `running`, in-process (checkpoint job)"
        out.append(latency(3, what, backend, fig["start"]))
    if per := doc["checks"].get("per_iteration_ns"):
        ours, tqdm, bare = per.get("jobctl"), per.get("tqdm"), per.get("bare")
        note = "tqdm: not installed"
        if ours and tqdm:
            note = f"tqdm {tqdm:.0f} ns/it, bare loop {bare:.0f} ns/it; jobctl/tqdm "
            note += f"= {ours / tqdm:.2f}"
        what = "`job.progress()` + `checkpoint()` per iteration (median)"
        ok = None if not (ours and tqdm) else ours <= tqdm
        out.append(Line(5, what, "—", f"{ours:.0f} ns/it", "—", "≤ tqdm", note, verdict(ok)))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse(__doc__, Sizes(), SMOKE, argv=argv)
    sizes, report = args.sizes, Report()
    tmp = tempfile.mkdtemp(prefix="jobctl-engine-bench-")
    db_url = args.db_url or f"sqlite:///{tmp}/bench.db"
    print(f"engine benchmark on {args.backend}: {asdict(sizes)}, {POLICY}", flush=True)
    m = JobManager(db_url, policy=POLICY)
    rungs: Counter[str] = Counter()
    try:
        with recorded(report):
            per_iteration(m, report, sizes)
            for i in range(sizes.runs):
                print(
                    f"  round {i + 1}/{sizes.runs} (loadavg {os.getloadavg()[0]:.2f})", flush=True
                )
                for offset in OFFSETS:
                    stop_run(m, report, offset, rungs)
    finally:
        for row in m.store.active_rows():
            m.stop(row["id"])
            wait_status(m, row["id"], set(TERMINAL))
        m.close()
        report.check("endings", dict(rungs))
        if left := kill_pids(job_pids(db_url)):
            report.problem(f"{len(left)} job process(es) outlived their jobs: {left}")
        shutil.rmtree(tmp, ignore_errors=True)
    return finish(report, args, rows, policy=asdict(POLICY))


if __name__ == "__main__":
    sys.exit(main())
