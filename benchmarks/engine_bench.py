"""Engine benchmark: start latency, stop latency per stop-ladder rung, per-iteration cost.

Run from the repository root:

    .venv/bin/python benchmarks/engine_bench.py            # defaults: --runs 30
    .venv/bin/python benchmarks/engine_bench.py --smoke    # tiny sizes, < 20 s
    .venv/bin/python benchmarks/engine_bench.py --runs 50 --json /tmp/bench.json

Machines are noisy, so every figure is a distribution (p50/p95/p99/max), and the job
figures are interleaved round by round with baselines measured in the same run (a bare
``python`` start, a ``python`` start that imports the store). Nothing sleeps for a fixed
time to measure: the script polls (every ``POLL`` s) until a condition holds, with a
generous timeout. Every job it starts ends terminal; anything still active is stopped in
a ``finally`` before exit.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import bench_jobs  # noqa: E402  (needs BENCH_DIR on sys.path)
from common import DEMO_SPEC, TERMINAL, exit_on_sigterm, percentile  # noqa: E402

from jupyter_jobctl import runtime as jc  # noqa: E402
from jupyter_jobctl.core.errors import Conflict, JobNotFound  # noqa: E402
from jupyter_jobctl.manager import JobManager, StopPolicy  # noqa: E402

POLL = 0.002  # seconds between polls
WAIT_TIMEOUT = 60.0  # generous: a loaded machine must not turn a slow run into a crash
POLICY = StopPolicy(interrupt_after=0.2, stop_grace=0.5, kill_grace=0.3, heartbeat_interval=1.0)
COOPERATIVE_SETTLE = 0.1  # after READY, poll status this long before stopping a cooperative job

GOAL_COOP_STOP_P99 = 0.150
GOAL_START_P99 = 0.300


# ------------------------------------------------------------------ settings and samples


@dataclass
class Settings:
    runs: int
    sigkill_runs: int
    iterations: int
    repeats: int
    db_url: str
    smoke: bool


@dataclass
class StopPath:
    """One rung of the stop ladder: the job that exercises it and how it must end."""

    key: str
    label: str
    kind: str
    spec: dict[str, Any]
    expected_s: float  # the policy's delay before this rung acts
    expect_exit_code: int | None
    expect_signal: str | None


@dataclass
class Anomaly:
    """Something the engine did unexpectedly, with the job's event trail if there is one."""

    category: str
    text: str
    story: list[str] = field(default_factory=list)


@dataclass
class Results:
    samples: dict[str, list[float]] = field(default_factory=dict)  # seconds
    anomalies: list[Anomaly] = field(default_factory=list)
    per_iteration: dict[str, list[float]] = field(default_factory=dict)  # ns per iteration
    round_load: list[float] = field(default_factory=list)  # 1-min loadavg at each round
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(seconds)

    def anomaly(self, category: str, text: str, story: list[str] | None = None) -> None:
        self.anomalies.append(Anomaly(category, text, story or []))
        print(f"  ! {text}", flush=True)


def stop_paths() -> list[StopPath]:
    cwd = str(BENCH_DIR)
    return [
        StopPath(
            "stop.cooperative",
            "stop -> cancelled, cooperative (checkpoint)",
            "training",
            {"target": "bench_jobs:cooperative", "config": {"sleep": 0.005}, "cwd": cwd},
            0.0,
            0,
            None,
        ),
        StopPath(
            "stop.sigint",
            "stop -> cancelled, SIGINT (blocked in sleep)",
            "training",
            {"target": "bench_jobs:sleeper", "config": {"seconds": 600}, "cwd": cwd},
            POLICY.interrupt_after,
            130,
            None,
        ),
        StopPath(
            "stop.sigkill",
            "stop -> cancelled, SIGKILL (ignores INT/TERM)",
            "command",
            {"argv": [sys.executable, "-c", bench_jobs.STUBBORN_SCRIPT]},
            max(POLICY.stop_grace, POLICY.interrupt_after) + POLICY.kill_grace,
            None,
            "SIGKILL",
        ),
    ]


# ------------------------------------------------------------------ statistics


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
        "min": min(values) if values else math.nan,
    }


def median(values: list[float]) -> float:
    return percentile(values, 50)


# ------------------------------------------------------------------ machine


def machine() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        usable = os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "loadavg_start": list(os.getloadavg()),
    }


# ------------------------------------------------------------------ polling helpers


class Bench:
    """The manager, the jobs this run created, and what was measured."""

    def __init__(self, manager: JobManager, results: Results) -> None:
        self.m = manager
        self.results = results
        self.jobs: list[str] = []

    def get_status(self, job_id: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        job = self.m.get(job_id)
        self.results.add("baseline.get", time.perf_counter() - t0)
        return job

    def wait_status(
        self, job_id: str, wanted: Iterable[str], timeout: float = WAIT_TIMEOUT
    ) -> tuple[dict[str, Any], float]:
        """Poll until the status is in ``wanted`` (or terminal); returns (job, perf time seen)."""
        stop_at = set(wanted) | TERMINAL
        deadline = time.perf_counter() + timeout
        while True:
            job = self.get_status(job_id)
            now = time.perf_counter()
            if job["status"] in stop_at or now > deadline:
                return job, now
            time.sleep(POLL)

    def wait_ready(self, job_id: str, timeout: float = WAIT_TIMEOUT) -> bool:
        """Poll the job's events until its target printed READY_LINE; False if it ended first."""
        after = 0
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for event in self.m.events(job_id, after=after):
                after = event["seq"]
                data = event["data"]
                if event["type"] == "log" and data.get("line") == bench_jobs.READY_LINE:
                    return True
                if event["type"] == "status" and data.get("status") in TERMINAL:
                    return False
            time.sleep(POLL)
        return False

    def hold_running(self, job_id: str, seconds: float) -> bool:
        """Poll status for ``seconds``; False if the job left ``running`` meanwhile."""
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            if self.get_status(job_id)["status"] != "running":
                return False
            time.sleep(POLL)
        return True

    def create_and_start(self, kind: str, spec: dict[str, Any], name: str) -> tuple[str, float]:
        """Create then start a job; returns (id, perf time before create)."""
        t0 = time.perf_counter()
        job, _ = self.m.create(kind, spec, name=name)
        self.jobs.append(job["id"])
        self.m.start(job["id"])
        return job["id"], t0

    def request_stop(self, job_id: str) -> float:
        """m.stop() with its call time recorded; returns the perf time just before the call."""
        t0 = time.perf_counter()
        self.m.stop(job_id)
        self.results.add("stop.api", time.perf_counter() - t0)
        return t0

    def ensure_terminal(self, job_id: str) -> None:
        """After a failed measurement: stop the job if still active and wait until it ends."""
        if self.m.get(job_id)["status"] in TERMINAL:
            return
        try:
            self.m.stop(job_id)
        except Conflict:
            pass
        self.wait_status(job_id, TERMINAL)

    def stop_and_wait(self, job_id: str, context: str) -> dict[str, Any]:
        self.request_stop(job_id)
        job, _ = self.wait_status(job_id, TERMINAL)
        if job["status"] != "cancelled":
            self.results.anomaly(
                f"{context}: not cancelled",
                f"{context}: job {job_id} ended {describe(job)}, not cancelled",
                job_story(self.m, job_id),
            )
        return job


def all_events(manager: JobManager, job_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while page := manager.events(job_id, after=out[-1]["seq"] if out else 0, limit=1000):
        out.extend(page)
    return out


def job_story(manager: JobManager, job_id: str, last: int = 14) -> list[str]:
    """The job's status changes, jobctl and stderr lines (the last ``last``), for anomalies."""
    lines = []
    for event in all_events(manager, job_id):
        data, ts = event["data"], event["ts"][11:23]
        if event["type"] == "status":
            lines.append(f"{ts} #{event['seq']} status {data.get('from')} -> {data.get('status')}")
        elif event["type"] == "log" and data.get("stream") in ("jobctl", "stderr"):
            lines.append(f"{ts} #{event['seq']} {data['stream']}: {data.get('line')}")
    return lines[-last:]


def describe(job: dict[str, Any]) -> str:
    parts = [job["status"]]
    for key in ("exit_code", "signal", "reason"):
        if key in job:
            parts.append(f"{key}={job[key]!r}")
    return " ".join(parts)


# ------------------------------------------------------------------ figures 1-3: job latencies


def run_start_latency(bench: Bench) -> None:
    """Figure 1: create+start -> running (demo trainer), then stop it and wait terminal."""
    job_id, t0 = bench.create_and_start("training", DEMO_SPEC, "bench start latency")
    try:
        bench.results.add("start.api", time.perf_counter() - t0)
        job, seen = bench.wait_status(job_id, {"running"})
        if job["status"] != "running":
            bench.results.anomaly(
                "start latency: never running",
                f"start latency: job {job_id} reached {describe(job)}, not running",
                job_story(bench.m, job_id),
            )
            return
        bench.results.add("start.running", seen - t0)
        bench.stop_and_wait(job_id, "start latency (stop after running)")
    finally:
        bench.ensure_terminal(job_id)


def armed(bench: Bench, path: StopPath, job_id: str) -> bool:
    """Wait until the job runs and its target printed READY (+ settle for cooperative)."""
    job, _ = bench.wait_status(job_id, {"running"})
    if job["status"] != "running":
        problem = f"reached {describe(job)}, not running"
    elif not bench.wait_ready(job_id):
        problem = f"never printed READY ({describe(bench.m.get(job_id))})"
    elif path.key == "stop.cooperative" and not bench.hold_running(job_id, COOPERATIVE_SETTLE):
        problem = f"left running early ({describe(bench.m.get(job_id))})"
    else:
        return True
    bench.results.anomaly(
        f"{path.key}: not armed", f"{path.key}: job {job_id} {problem}", job_story(bench.m, job_id)
    )
    return False


def check_rung(bench: Bench, path: StopPath, job: dict[str, Any]) -> None:
    """A cancelled job must have ended through the rung its path exercises."""
    if job.get("exit_code") == path.expect_exit_code and job.get("signal") == path.expect_signal:
        return
    bench.results.anomaly(
        f"{path.key}: cancelled through another rung",
        f"{path.key}: job {job['id']} was cancelled through another rung than expected "
        f"(expected exit_code={path.expect_exit_code!r} signal={path.expect_signal!r}; "
        f"got {describe(job)})",
        job_story(bench.m, job["id"]),
    )


def run_stop_path(bench: Bench, path: StopPath) -> None:
    """Figure 2: from just before m.stop() to the first poll that sees ``cancelled``."""
    job_id, _ = bench.create_and_start(path.kind, path.spec, f"bench {path.key}")
    try:
        if not armed(bench, path, job_id):
            return
        t0 = bench.request_stop(job_id)
        job, seen = bench.wait_status(job_id, TERMINAL)
        if job["status"] != "cancelled":
            bench.results.anomaly(
                f"{path.key}: not cancelled",
                f"{path.key}: job {job_id} ended {describe(job)}, not cancelled",
                job_story(bench.m, job_id),
            )
            return
        bench.results.add(path.key, seen - t0)
        check_rung(bench, path, job)
    finally:
        bench.ensure_terminal(job_id)


def run_spawn_baseline(results: Results, name: str, argv: list[str]) -> None:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    results.add(name, time.perf_counter() - t0)


def schedule(settings: Settings) -> list[list[str]]:
    """Rounds of tasks: every figure and baseline once per round, SIGKILL spread evenly."""
    rounds = max(settings.runs, settings.sigkill_runs)
    kill_rounds = {i * rounds // settings.sigkill_runs for i in range(settings.sigkill_runs)}
    plan = []
    for i in range(rounds):
        tasks = []
        if i < settings.runs:
            tasks += [
                "baseline.python",
                "baseline.import",
                "start",
                "stop.cooperative",
                "stop.sigint",
            ]
        if i in kill_rounds:
            tasks.append("stop.sigkill")
        plan.append(tasks)
    return plan


def run_job_figures(bench: Bench, settings: Settings) -> None:
    paths = {p.key: p for p in stop_paths()}
    baselines = {
        "baseline.python": [sys.executable, "-c", "pass"],
        "baseline.import": [sys.executable, "-c", "import jupyter_jobctl.db.store"],
    }
    plan = schedule(settings)
    for i, tasks in enumerate(plan, 1):
        load = os.getloadavg()[0]
        bench.results.round_load.append(load)
        extra = " +sigkill" if "stop.sigkill" in tasks else ""
        print(f"  round {i}/{len(plan)}{extra} (loadavg {load:.2f})", flush=True)
        for task in tasks:
            if task in baselines:
                run_spawn_baseline(bench.results, task, baselines[task])
            elif task == "start":
                run_start_latency(bench)
            else:
                run_stop_path(bench, paths[task])


# ------------------------------------------------------------------ figure 4: per-iteration cost


def loop_bare(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


def loop_job(job: Any, n: int) -> int:
    x = 0
    for i in job.progress(range(n)):
        job.checkpoint()
        x += i
    return x


def loop_tqdm(n: int, sink: Any) -> int:
    from tqdm import tqdm

    x = 0
    for i in tqdm(range(n), file=sink):
        x += i
    return x


def time_loop(fn: Callable[[], int], n: int) -> float:
    """ns per iteration of one call."""
    gc.collect()
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / n


def loop_variants(n: int, sink: Any, notes: list[str]) -> dict[str, Callable[[], int]]:
    """The loops without a real job: bare, tqdm (if installed) and the stand-in."""
    standin = jc.current()  # outside a worker and before attach: the do-nothing stand-in
    variants: dict[str, Callable[[], int]] = {"bare": lambda: loop_bare(n)}
    if importlib.util.find_spec("tqdm") is not None:
        variants["tqdm"] = lambda: loop_tqdm(n, sink)
    else:
        notes.append("tqdm is not installed: the tqdm variant was skipped")
    variants["standin"] = lambda: loop_job(standin, n)
    return variants


def run_per_iteration(bench: Bench, settings: Settings) -> None:
    """Figure 4: ns per step, the variants interleaved (order rotated) ``repeats`` times."""
    n = settings.iterations
    if jc.in_worker():
        bench.results.anomaly("per-iteration", "jc.in_worker() is True outside a worker")
    row, _ = bench.m.create("training", {"target": "bench_jobs:cooperative"}, name="bench overhead")
    bench.jobs.append(row["id"])
    with open(os.devnull, "w") as sink:
        variants = loop_variants(n, sink, bench.results.notes)
        try:
            job = jc.attach(row["id"], 0, bench.m.db_url, {})  # pending job: attempt 0
            variants["jobctl"] = lambda: loop_job(job, n)
            names = list(variants)
            for rep in range(settings.repeats):
                shift = rep % len(names)
                for name in names[shift:] + names[:shift]:
                    sample = time_loop(variants[name], n)
                    bench.results.per_iteration.setdefault(name, []).append(sample)
        finally:
            jc.detach()
    check_overhead_job(bench, row["id"], settings)


def check_overhead_job(bench: Bench, job_id: str, settings: Settings) -> None:
    """The attached job really reported (progress events landed), then cancel it."""
    progress = [e for e in all_events(bench.m, job_id) if e["type"] == "progress"]
    if not progress:
        bench.results.anomaly(
            "per-iteration", f"per-iteration: attached job {job_id} wrote no progress event"
        )
    else:
        last = progress[-1]["data"]
        if last.get("done") != settings.iterations:
            bench.results.anomaly(
                "per-iteration",
                f"per-iteration: last progress event of {job_id} says done={last.get('done')!r}, "
                f"expected {settings.iterations}",
            )
    bench.stop_and_wait(job_id, "per-iteration (attached pending job)")


# ------------------------------------------------------------------ cleanup


def stop_everything(bench: Bench) -> list[str]:
    """Stop every job of this run that is not terminal and wait for it; returns leftovers."""
    active = []
    for job_id in bench.jobs:
        try:
            status = bench.m.get(job_id)["status"]
        except JobNotFound:
            continue
        if status in TERMINAL:
            continue
        try:
            bench.m.stop(job_id)
        except Conflict:
            pass
        active.append(job_id)
    if active:
        print(f"cleanup: stopping {len(active)} active job(s)", flush=True)
    leftovers = []
    for job_id in active:
        job, _ = bench.wait_status(job_id, TERMINAL, timeout=30.0)
        if job["status"] not in TERMINAL:
            leftovers.append(f"{job_id} still {job['status']}")
    return leftovers


def wait_supervisors(manager: JobManager, timeout: float = 15.0) -> int:
    """Poll until every supervisor this process launched has exited; returns how many remain."""
    pending = getattr(manager.executor, "pending_children", None)
    if pending is None:
        return 0
    deadline = time.perf_counter() + timeout
    while (left := pending()) and time.perf_counter() < deadline:
        time.sleep(POLL * 5)
    return left


# ------------------------------------------------------------------ report


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def latency_rows(results: Results) -> list[tuple[str, str, str]]:
    """(key, label, comparison) for every latency figure, in print order."""
    s = results.samples
    base_py = median(s.get("baseline.python", []))
    base_imp = median(s.get("baseline.import", []))
    base_get = median(s.get("baseline.get", []))

    def vs(key: str, base: float, what: str) -> str:
        value = median(s.get(key, []))
        if math.isnan(value) or math.isnan(base) or base <= 0:
            return ""
        return f"p50 = {value / base:.2f}x {what}"

    rows = [
        ("baseline.python", "baseline: python -c pass", ""),
        ("baseline.import", "baseline: python -c 'import ...store'", ""),
        ("baseline.get", "baseline: m.get() poll", ""),
        ("start.api", "create+start API return", vs("start.api", base_get, "m.get()")),
        (
            "start.running",
            "create+start -> running (demo trainer)",
            vs("start.running", base_imp, "python+import store"),
        ),
    ]
    for path in stop_paths():
        note = ""
        value = median(s.get(path.key, []))
        if path.expected_s > 0 and not math.isnan(value):
            note = (
                f"expect ~{ms(path.expected_s)} ms; p50 overhead {ms(value - path.expected_s)} ms"
            )
        elif not math.isnan(value):
            note = vs(path.key, base_py, "python -c pass")
        rows.append((path.key, path.label, note))
    rows.append(("stop.api", "m.stop() call (all paths)", vs("stop.api", base_get, "m.get()")))
    return rows


def print_latency_table(results: Results) -> None:
    header = f"{'figure':<46} {'n':>5} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}  (ms)"
    print(header)
    print("-" * len(header))
    for key, label, note in latency_rows(results):
        values = results.samples.get(key, [])
        st = summary(values)
        line = (
            f"{label:<46} {st['n']:>5} {ms(st['p50']):>8} {ms(st['p95']):>8} "
            f"{ms(st['p99']):>8} {ms(st['max']):>8}"
        )
        print(line + (f"  {note}" if note else ""))


def iteration_summary(results: Results) -> dict[str, dict[str, float]]:
    per = results.per_iteration
    bare = median(per.get("bare", []))
    out = {}
    for name, values in per.items():
        med = median(values)
        out[name] = {
            "median_ns": med,
            "min_ns": min(values),
            "max_ns": max(values),
            "n": len(values),
        }
        out[name]["vs_bare"] = med / bare if bare > 0 else math.nan
    return out


def print_iteration_table(results: Results, settings: Settings) -> None:
    table = iteration_summary(results)
    print(
        f"loop of {settings.iterations} steps, {settings.repeats} interleaved repeats per variant"
    )
    header = f"{'variant':<44} {'median':>9} {'min':>9} {'max':>9} {'x bare':>8}  (ns/it)"
    print(header)
    print("-" * len(header))
    labels = {
        "bare": "bare: for i in range(n): x += i",
        "tqdm": "tqdm(range(n), file=devnull)",
        "standin": "stand-in: job.progress + job.checkpoint()",
        "jobctl": "jobctl: attached Job, progress + checkpoint",
    }
    for name, row in table.items():
        print(
            f"{labels.get(name, name):<44} {row['median_ns']:>9.1f} {row['min_ns']:>9.1f} "
            f"{row['max_ns']:>9.1f} {row['vs_bare']:>8.2f}"
        )
    if "jobctl" in table and "tqdm" in table:
        ratio = table["jobctl"]["median_ns"] / table["tqdm"]["median_ns"]
        print(f"jobctl / tqdm = {ratio:.2f}   jobctl / bare = {table['jobctl']['vs_bare']:.2f}")


def goals(results: Results) -> list[dict[str, Any]]:
    s = results.samples
    coop, start = s.get("stop.cooperative", []), s.get("start.running", [])
    out = [
        {
            "goal": f"cooperative stop p99 < {ms(GOAL_COOP_STOP_P99)} ms",
            "p50_ms": percentile(coop, 50) * 1000,
            "p99_ms": percentile(coop, 99) * 1000,
            "n": len(coop),
            "pass": bool(coop) and percentile(coop, 99) < GOAL_COOP_STOP_P99,
        },
        {
            "goal": f"create+start -> running p99 < {ms(GOAL_START_P99)} ms",
            "p50_ms": percentile(start, 50) * 1000,
            "p99_ms": percentile(start, 99) * 1000,
            "n": len(start),
            "pass": bool(start) and percentile(start, 99) < GOAL_START_P99,
        },
    ]
    table = iteration_summary(results)
    if "jobctl" in table and "tqdm" in table:
        job_ns, tqdm_ns = table["jobctl"]["median_ns"], table["tqdm"]["median_ns"]
        out.append(
            {
                "goal": "jobctl per-iteration cost <= tqdm",
                "jobctl_ns": job_ns,
                "tqdm_ns": tqdm_ns,
                "pass": job_ns <= tqdm_ns,
            }
        )
    return out


def print_goals(results: Results) -> None:
    for g in goals(results):
        verdict = "PASS" if g["pass"] else "MISS"
        if "p99_ms" in g:
            detail = f"p50 {g['p50_ms']:.1f} ms, p99 {g['p99_ms']:.1f} ms (n={g['n']})"
        else:
            detail = f"jobctl {g['jobctl_ns']:.1f} ns/it vs tqdm {g['tqdm_ns']:.1f} ns/it"
        print(f"  [{verdict}] {g['goal']:<42} {detail}")


def print_report(info: dict[str, Any], settings: Settings, results: Results) -> None:
    print("\n== Job latencies (interleaved rounds) ==")
    print_latency_table(results)
    print("\n== Per-iteration cost ==")
    print_iteration_table(results, settings)
    print("\n== Goals ==")
    print_goals(results)
    print("\n== Engine anomalies ==")
    print_anomalies(results.anomalies)
    for note in results.notes:
        print(f"  note: {note}")
    print(f"\nloadavg start {fmt_load(info['loadavg_start'])}, end {fmt_load(os.getloadavg())}")
    if results.round_load:
        loads = results.round_load
        print(
            f"1-min loadavg over the rounds: min {min(loads):.2f}, median {median(loads):.2f}, "
            f"max {max(loads):.2f} (on {info['cpus_usable']} cpus)"
        )


def print_anomalies(anomalies: list[Anomaly]) -> None:
    """Grouped by category: a count, the first occurrence in full, the other texts in short."""
    if not anomalies:
        print("  none")
        return
    groups: dict[str, list[Anomaly]] = {}
    for item in anomalies:
        groups.setdefault(item.category, []).append(item)
    for category, items in groups.items():
        print(f"  [{len(items)}x] {category}")
        first = items[0]
        print(f"    e.g. {first.text}")
        for line in first.story:
            print(f"         {line}")
        for other in items[1:]:
            print(f"    also {other.text}")


def fmt_load(load: Iterable[float]) -> str:
    return " ".join(f"{v:.2f}" for v in load)


def write_json(path: str, info: dict[str, Any], settings: Settings, results: Results) -> None:
    figures = {}
    for key, values in results.samples.items():
        st = summary(values)
        entry: dict[str, Any] = {k: (v * 1000 if k != "n" else v) for k, v in st.items()}
        if len(values) <= 1000:
            entry["samples_ms"] = [v * 1000 for v in values]
        figures[key] = entry
    payload = {
        "machine": {**info, "loadavg_end": list(os.getloadavg())},
        "settings": asdict(settings),
        "policy": asdict(POLICY),
        "latency_ms": figures,
        "per_iteration_ns": {
            name: {**row, "samples": results.per_iteration[name]}
            for name, row in iteration_summary(results).items()
        },
        "goals": goals(results),
        "anomalies": [asdict(a) for a in results.anomalies],
        "round_loadavg": results.round_load,
        "notes": results.notes,
    }
    Path(path).write_text(json.dumps(payload, indent=2, default=str))
    print(f"wrote {path}")


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per job figure (default 30)")
    parser.add_argument(
        "--iterations", type=int, default=200_000, help="loop steps per overhead sample"
    )
    parser.add_argument("--db-url", default=None, help="default: a fresh SQLite file in a temp dir")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, finishes in < 20 s")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.iterations < 1:
        parser.error("--runs and --iterations must be positive")
    return args


def make_settings(args: argparse.Namespace, db_url: str) -> Settings:
    if args.smoke:
        return Settings(
            runs=min(args.runs, 3),
            sigkill_runs=1,
            iterations=min(args.iterations, 20_000),
            repeats=3,
            db_url=db_url,
            smoke=True,
        )
    return Settings(
        runs=args.runs,
        sigkill_runs=max(3, args.runs // 3),
        iterations=args.iterations,
        repeats=5,
        db_url=db_url,
        smoke=False,
    )


def print_header(info: dict[str, Any], settings: Settings) -> None:
    print("== Machine ==")
    print(
        f"cpus {info['cpu_count']} (usable {info['cpus_usable']}), "
        f"{info['implementation']} {info['python']}, {info['platform']}, "
        f"loadavg {fmt_load(info['loadavg_start'])}"
    )
    print(
        f"db {settings.db_url}\nruns {settings.runs} (SIGKILL path {settings.sigkill_runs}), "
        f"iterations {settings.iterations}, poll every {POLL * 1000:.0f} ms"
        + (", SMOKE" if settings.smoke else "")
    )
    p = POLICY
    print(
        f"policy: interrupt_after={p.interrupt_after}s stop_grace={p.stop_grace}s "
        f"kill_grace={p.kill_grace}s heartbeat_interval={p.heartbeat_interval}s"
    )


def signal_notes() -> list[str]:
    """Dispositions the engine's processes inherit from us that would skew the figures."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return [
            "SIGINT is ignored in this process (e.g. started with '&' from a script); "
            "supervisors and workers inherit that, so the SIGINT rung cannot stop a job"
        ]
    return []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    tmpdir = None if args.db_url else tempfile.mkdtemp(prefix="jobctl-bench-")
    db_url = args.db_url or f"sqlite:///{tmpdir}/bench.db"
    settings = make_settings(args, db_url)
    info = machine()
    print_header(info, settings)
    results = Results(notes=signal_notes())
    for note in results.notes:
        print(f"note: {note}")
    manager = JobManager(db_url, policy=POLICY)
    bench = Bench(manager, results)
    started = time.perf_counter()
    try:
        print("\n== Per-iteration cost (measured first, while no job runs) ==", flush=True)
        run_per_iteration(bench, settings)
        print("== Job figures ==", flush=True)
        run_job_figures(bench, settings)
    finally:
        leftovers = stop_everything(bench)
        remaining = wait_supervisors(manager)
        manager.close()
        for text in leftovers:
            results.anomaly("cleanup", f"cleanup: {text}")
        if remaining:
            results.anomaly("cleanup", f"cleanup: {remaining} supervisor process(es) still running")
        clean = not leftovers and not remaining
        if tmpdir and clean:
            shutil.rmtree(tmpdir, ignore_errors=True)
    print_report(info, settings, results)
    print(f"total time {time.perf_counter() - started:.1f} s; jobs created {len(bench.jobs)}")
    if args.json:
        write_json(args.json, info, settings, results)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
