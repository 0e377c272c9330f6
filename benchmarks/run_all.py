"""Run every benchmark and write ``benchmarks/RESULTS.md`` (what ``make bench`` does).

Run from the repository root:

    .venv/bin/python benchmarks/run_all.py                  # full sizes, < 15 min on 2 CPUs
    .venv/bin/python benchmarks/run_all.py --smoke          # tiny sizes; writes a temp file
    .venv/bin/python benchmarks/run_all.py --smoke --out /tmp/RESULTS.md
    .venv/bin/python benchmarks/run_all.py --only engine,batch --out /tmp/RESULTS.md

Each benchmark script runs as a subprocess with ``--json`` (its own output goes to the
console as it comes), first on SQLite and then, for the figures that depend on the
database (stop, push latency, ingest, list), on PostgreSQL: a throw-away cluster of the
Debian binaries in ``/usr/lib/postgresql/*/bin`` (run as the ``postgres`` user when we are
root, on a free port, ``fsync=off``) with a fresh database per run. Every step gets its own
``TMPDIR`` under one run directory, so any job process a step leaves behind is found by
its database URL and killed (and reported); the cluster is stopped in a ``finally``.

The markdown has the machine, one row per figure and backend (p50, p99 or rate, goal,
comparison, PASS/MISS), what the scripts reported as problems, and how to reproduce.
Exit status: 0 when every step produced its numbers (a MISS is a result, not an error),
1 when a step crashed or timed out, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import glob
import json
import math
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import cpu_model, end_group, exit_on_sigterm, free_port, kill_pids, pids_with_env

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"
SQLITE, PG = "SQLite", "PostgreSQL"
STEP_GRACE = 90.0  # seconds from SIGTERM to SIGKILL of a step: the scripts clean up on SIGTERM


# ---------------------------------------------------------------------------- the steps


@dataclass
class Step:
    """One benchmark run: a script with its arguments, on one backend."""

    name: str
    script: str
    full: list[str]
    smoke: list[str]
    backend: str = SQLITE
    db_option: str = ""  # how the script takes a PostgreSQL URL ("--db-url=" ...)
    timeout_full: float = 600.0
    timeout_smoke: float = 240.0


SERVER_FIGS = "--only=latency,list"  # stop: ingest_soak_bench.py, in batches
TICKS = "--tick-seconds=5"  # 100 push-latency samples idle and 100 under load
NICE = "--server-arg=--JobCtl.job_nice=5"  # figure 6 again with jobs yielding to the server
STEPS = [
    Step("engine", "engine_bench.py", ["--runs=5"], ["--smoke"]),
    Step("server", "server_bench.py", [SERVER_FIGS, TICKS], ["--smoke", SERVER_FIGS]),
    Step("ingest", "ingest_soak_bench.py", [], ["--smoke"]),
    Step("batch", "batch_bench.py", ["--tests=2000", "--results=10000"], ["--smoke"]),
    Step("scheduler", "scheduler_compare.py", [], ["--smoke"], timeout_full=900),
    Step(
        "server-pg",
        "server_bench.py",
        [SERVER_FIGS, TICKS],
        ["--smoke", SERVER_FIGS],
        PG,
        "--server-arg=--JobCtl.db_url=",
    ),
    Step(
        "ingest-nice",
        "ingest_soak_bench.py",
        ["--only=ingest", "--ingest-baseline-seconds=0", NICE],
        ["--smoke", "--only=ingest", "--ingest-baseline-seconds=0", NICE],
    ),
    Step(
        "ingest-pg",
        "ingest_soak_bench.py",
        ["--only=stop,ingest"],
        ["--smoke", "--only=stop,ingest"],
        PG,
        "--db-url=",
    ),
]


@dataclass
class Outcome:
    step: Step
    args: list[str] = field(default_factory=list)  # as run, without --json
    seconds: float = 0.0
    returncode: int | None = None
    doc: dict[str, Any] | None = None
    error: str = ""
    leftovers: list[int] = field(default_factory=list)


# ---------------------------------------------------------------------------- PostgreSQL


def pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    return found[-1] if found else None


class Postgres:
    """A throw-away cluster (as conftest's ``postgres_server``); databases made on demand."""

    def __init__(self, bin_dir: str) -> None:
        self.bin_dir = bin_dir
        self.data = tempfile.mkdtemp(prefix="jobctl-bench-pg-")
        self.port = free_port()
        self.as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.started = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://jobctl@127.0.0.1:{self.port}"

    def pg(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_pg, *args], capture_output=True, text=True)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres")
        init = self.pg(f"{self.bin_dir}/initdb", "-D", self.data, "-A", "trust", "-U", "jobctl")
        if init.returncode:
            raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
        opts = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=300"
        )
        ctl = f"{self.bin_dir}/pg_ctl"
        run = self.pg(ctl, "-D", self.data, "-w", "-l", f"{self.data}/log", "-o", opts, "start")
        self.started = run.returncode == 0
        if not self.started:
            raise RuntimeError(f"pg_ctl start failed: {run.stderr[-2000:]}")

    def create_database(self) -> str:
        import psycopg

        name = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(f"postgresql://jobctl@127.0.0.1:{self.port}/postgres") as conn:
            conn.autocommit = True
            conn.execute(f"CREATE DATABASE {name}")
        return f"{self.url}/{name}"

    def stop(self) -> None:
        if self.started:
            self.pg(f"{self.bin_dir}/pg_ctl", "-D", self.data, "-m", "immediate", "stop")
        shutil.rmtree(self.data, ignore_errors=True)


def pg_version(bin_dir: str | None) -> str:
    if not bin_dir:
        return "not installed"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([f"{bin_dir}/postgres", "--version"], capture_output=True, text=True)
        return out.stdout.strip().replace("postgres (PostgreSQL) ", "")
    return "unknown"


@contextlib.contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    bin_dir = pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (`make test` installs Debian postgresql)")
    cluster = Postgres(bin_dir)
    try:
        cluster.start()
        print(f"PostgreSQL {pg_version(bin_dir)} on 127.0.0.1:{cluster.port}", flush=True)
        yield cluster
    finally:
        cluster.stop()


# ---------------------------------------------------------------------------- running a step


def sweep(prefixes: list[str]) -> list[int]:
    """SIGKILL what a step left behind (its jobs' supervisors and workers); their pids."""

    def in_step(item: bytes) -> bool:
        if not item.startswith(b"JOBCTL_DB_URL="):
            return False
        url = item.split(b"=", 1)[1].decode(errors="replace")
        return any(url.startswith(p) for p in prefixes)

    pids = pids_with_env(in_step)
    kill_pids(pids)
    return pids


def run_step(step: Step, smoke: bool, run_dir: Path, db_url: str | None) -> Outcome:
    out = Outcome(step, list(step.smoke if smoke else step.full))
    if db_url:
        out.args.append(f"{step.db_option}<fresh database>")
    tmp = run_dir / step.name
    tmp.mkdir()
    json_path = tmp / "result.json"
    argv = [sys.executable, str(BENCH_DIR / step.script), *(step.smoke if smoke else step.full)]
    if db_url:
        argv.append(step.db_option + db_url)
    argv.append(f"--json={json_path}")
    timeout = step.timeout_smoke if smoke else step.timeout_full
    print(f"\n=== {step.name} ({step.backend}): {' '.join(argv[1:])}", flush=True)
    env = {**os.environ, "TMPDIR": str(tmp)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, start_new_session=True)
    try:
        out.returncode = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        out.error = f"timed out after {timeout:.0f} s"
        end_group(proc, STEP_GRACE)
    except BaseException:
        end_group(proc, STEP_GRACE)
        raise
    finally:
        out.seconds = time.perf_counter() - t0
        out.leftovers = sweep([f"sqlite:///{tmp}", *([db_url] if db_url else [])])
    if json_path.exists():
        with contextlib.suppress(ValueError):
            out.doc = json.loads(json_path.read_text())
    if out.doc is None and not out.error:
        out.error = f"exit status {out.returncode} and no JSON written"
    print(f"=== {step.name}: {out.seconds:.1f} s, exit {out.returncode}", flush=True)
    return out


def run_steps(steps: list[Step], smoke: bool, run_dir: Path) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    with contextlib.ExitStack() as stack:
        cluster: Postgres | None = None
        for step in steps:
            db_url = None
            if step.backend == PG:
                try:
                    if cluster is None:
                        cluster = stack.enter_context(postgres_cluster())
                    db_url = cluster.create_database()
                except Exception as exc:
                    outcomes[step.name] = Outcome(step, error=f"PostgreSQL: {exc}")
                    print(f"=== {step.name}: skipped, {exc}", flush=True)
                    continue
            outcomes[step.name] = run_step(step, smoke, run_dir, db_url)
    return outcomes


# ---------------------------------------------------------------------------- reading numbers


def dig(doc: dict[str, Any] | None, *path: str) -> Any:
    """doc[path[0]][path[1]]... or None when any part is missing."""
    value: Any = doc
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def num(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def ms(value: Any) -> str:
    v = num(value)
    if v is None:
        return "—"
    return f"{v:.0f} ms" if v >= 100 else f"{v:.1f} ms"


def rate(value: Any) -> str:
    v = num(value)
    return "—" if v is None else f"{v:,.0f}".replace(",", " ")


def verdict(ok: bool | None) -> str:
    return "no data" if ok is None else ("PASS" if ok else "MISS")


def below(value: Any, limit: float) -> bool | None:
    v = num(value)
    return None if v is None else v < limit


@dataclass
class Line:
    figure: int
    what: str
    backend: str
    p50: str
    p99: str
    goal: str
    comparison: str
    verdict: str


Docs = dict[str, dict[str, Any] | None]


def latency_line(
    figure: int,
    what: str,
    backend: str,
    fig: dict[str, Any] | None,
    goal: str,
    limit_ms: float | None,
    comparison: str,
) -> Line:
    """A p50/p99 row whose goal (if any) is p99 < ``limit_ms``."""
    p99 = dig(fig, "p99_ms")
    n = dig(fig, "n")
    comparison = f"{comparison}; n={n}" if comparison and n else (f"n={n}" if n else comparison)
    ok = below(p99, limit_ms) if limit_ms is not None else None
    mark = verdict(ok) if limit_ms is not None else ("—" if fig else "no data")
    return Line(figure, what, backend, ms(dig(fig, "p50_ms")), ms(p99), goal, comparison, mark)


def backends(docs: Docs, step: str) -> list[tuple[str, dict[str, Any] | None]]:
    return [(SQLITE, docs.get(step)), (PG, docs.get(f"{step}-pg"))]


# ---------------------------------------------------------------------------- the figures


STOP_PATHS = (
    ("stop_coop_to_cancelled_ws", "cooperative (checkpoint every 5 ms)"),
    ("stop_sleep_to_cancelled_ws", "blocked in `time.sleep`"),
    ("stop_stubborn_to_cancelled_ws", "`command` ignoring SIGINT/SIGTERM"),
)


def fig1_stop(docs: Docs) -> list[Line]:
    lines = []
    poll = dig(docs.get("engine"), "latency_ms", "stop.cooperative", "p50")
    for backend, ingest in backends(docs, "ingest"):
        for key, what in STOP_PATHS:
            fig = dig(ingest, "figures", key)
            rung = num(dig(ingest, "checks", f"{key}_ladder_s"))
            p50 = num(dig(fig, "p50_ms"))
            what = f"stop → `cancelled` on WS, {what}"
            if key == "stop_coop_to_cancelled_ws":
                note = f"in-process, polling the DB: p50 {ms(poll)}" if poll else ""
                lines.append(latency_line(1, what, backend, fig, "p99 < 150 ms", 150, note))
                continue
            note = ""
            if rung is not None and p50 is not None:
                note = f"rung at {rung * 1000:.0f} ms; p50 overhead {p50 - rung * 1000:.0f} ms"
            lines.append(latency_line(1, what, backend, fig, "— (ladder-bound)", None, note))
    return lines


def fig2_stop_api(docs: Docs) -> list[Line]:
    in_process = dig(docs.get("engine"), "latency_ms", "stop.api", "p50")
    note = f"in-process `m.stop()` p50 {ms(in_process)}" if in_process else ""
    what = "`POST /jobs/{id}/stop` round trip"
    return [
        latency_line(2, what, backend, dig(ingest, "figures", "stop_rtt"), "p99 < 20 ms", 20, note)
        for backend, ingest in backends(docs, "ingest")
    ]


def fig3_start(docs: Docs) -> list[Line]:
    sched = docs.get("scheduler")
    ours = dig(sched, "figures", "start.jobctl")
    theirs = dig(sched, "figures", "start.scheduler")
    ratio = num(dig(theirs, "ratio_p50"))
    ok = None
    if ratio is not None and num(dig(ours, "p99_ms")) is not None:
        ok = bool(below(dig(ours, "p99_ms"), 300)) and ratio >= 5
    note = "jupyter-scheduler: no data"
    if ratio is not None:
        note = (
            f"jupyter-scheduler create → IN_PROGRESS p50 {ms(dig(theirs, 'p50_ms'))}, "
            f"p99 {ms(dig(theirs, 'p99_ms'))}: jobctl **{ratio:.1f}x** faster (p50)"
        )
    what = "create+start → `running` (demo trainer)"
    goal = "p99 < 300 ms and ≥ 5x faster"
    line = latency_line(3, what, SQLITE, ours, goal, None, note)
    line.verdict = verdict(ok)
    return [line]


def fig4_push(docs: Docs) -> list[Line]:
    lines = []
    for backend, server in backends(docs, "server"):
        seen = rate(dig(server, "checks", "load_events_per_s"))
        target = rate(dig(server, "checks", "load_events_per_s_target"))
        load = f"{dig(server, 'sizes', 'load_jobs')} jobs writing {seen} of {target} events/s"
        for key, what, note in (
            ("event_to_ws_idle", "worker `job.log` → WS client, idle", ""),
            ("event_to_ws_load", "worker `job.log` → WS client, under load", load),
        ):
            fig = dig(server, "figures", key)
            lines.append(latency_line(4, what, backend, fig, "p99 < 100 ms", 100, note))
    return lines


def fig5_overhead(docs: Docs) -> list[Line]:
    per = dig(docs.get("engine"), "per_iteration_ns") or {}
    ours, tqdm, bare = (num(dig(per, k, "median_ns")) for k in ("jobctl", "tqdm", "bare"))
    ok = None if ours is None or tqdm is None else ours <= tqdm
    note = "tqdm: no data"
    if ours is not None and tqdm is not None:
        note = (
            f"tqdm {tqdm:.0f} ns/it, bare loop {bare or math.nan:.0f} ns/it; "
            f"jobctl/tqdm = {ours / tqdm:.2f}"
        )
    value = "—" if ours is None else f"{ours:.0f} ns/it"
    what = "`job.progress()` + `checkpoint()` per iteration (median)"
    return [Line(5, what, "—", value, "—", "≤ tqdm", note, verdict(ok))]


def ingest_note(ingest: dict[str, Any] | None) -> str:
    if not ingest:
        return ""
    flow = dig(ingest, "checks", "ingest_delivery") or {}
    sizes = dig(ingest, "sizes") or {}
    share = (num(flow.get("delivered_fraction")) or 0) * 100
    note = (
        f"{sizes.get('ingest_jobs')} jobs, {sizes.get('ingest_clients')} WS clients: "
        f"delivered {rate(flow.get('delivered_events_per_s'))} events/s "
        f"({share:.0f} % of the fan-out)"
    )
    alone = dig(ingest, "checks", "ingest_stored_no_clients", "events_per_s")
    health = dig(ingest, "figures", "health_during_ingest_no_clients")
    if alone is not None:
        note += (
            f"; the same jobs without clients: {rate(alone)} events/s, /health p50 "
            f"{ms(dig(health, 'p50_ms'))}, p99 {ms(dig(health, 'p99_ms'))}"
        )
    return note


def fig6_ingest(docs: Docs) -> list[Line]:
    lines = []
    runs = [*backends(docs, "ingest"), (f"{SQLITE}, `job_nice=5`", docs.get("ingest-nice"))]
    for backend, ingest in runs:
        if backend != SQLITE and ingest is None:
            continue
        stored = num(dig(ingest, "checks", "ingest_stored", "events_per_s"))
        health = dig(ingest, "figures", "health_during_ingest")
        ok = None
        if stored is not None and num(dig(health, "p99_ms")) is not None:
            ok = stored >= 20_000 and bool(below(dig(health, "p99_ms"), 50))
        lines.append(
            Line(
                figure=6,
                what="events/s stored; `GET /health` meanwhile",
                backend=backend,
                p50=f"/health {ms(dig(health, 'p50_ms'))}",
                p99=f"**{rate(stored)} events/s**; /health p99 {ms(dig(health, 'p99_ms'))}",
                goal="≥ 20 000 events/s, /health p99 < 50 ms",
                comparison=ingest_note(ingest),
                verdict=verdict(ok),
            )
        )
    return lines


def fig7_restore(docs: Docs) -> list[Line]:
    batch = docs.get("batch")
    tests, results = (100, 500) if dig(docs, "run", "smoke") else (2000, 10_000)
    fig = note = None
    if batch:
        fig = {"p50_ms": batch.get("restore_p50_ms"), "p99_ms": batch.get("restore_p99_ms")}
        overhead = num(batch.get("overhead_ratio")) or math.nan
        note = (
            f"{rate(tests)}-test batch: {rate(batch.get('results_per_s'))} results/s stored, "
            f"{overhead:.2f}x plain pytest's wall time"
        )
    what = f"reconnect to a {rate(results)}-result batch → `done`"
    return [latency_line(7, what, SQLITE, fig, "p99 < 300 ms", 300, note or "")]


def fig8_list(docs: Docs) -> list[Line]:
    sched = dig(docs.get("scheduler"), "figures", "list.scheduler.50")
    same_run = dig(docs.get("scheduler"), "figures", "list.jobctl.50")
    lines = []
    for backend, server in backends(docs, "server"):
        note = ""
        if backend == SQLITE and sched:
            ratio = num(dig(sched, "ratio_p50")) or math.nan
            note = (
                f"jupyter-scheduler `GET /jobs?max_items=50` p50 {ms(dig(sched, 'p50_ms'))} vs "
                f"jobctl {ms(dig(same_run, 'p50_ms'))} in the same run: {ratio:.1f}x"
            )
        rows = dig(server, "sizes", "list_jobs")
        what = f"`GET /jobs?limit=50` at {rate(rows)} jobs" if rows else "`GET /jobs` first page"
        fig = dig(server, "figures", "list_first_page")
        lines.append(latency_line(8, what, backend, fig, "p99 < 20 ms", 20, note))
    return lines


def soak_resources(soak: dict[str, Any]) -> str:
    before, after, change = soak["before"], soak["after"], soak["change"]
    return (
        f"RSS {before['rss_mib']}→{after['rss_mib']} MiB ({change['rss_mib'] * 100:+.1f} %), "
        f"FDs {before['fds']}→{after['fds']}, threads {before['threads']}→{after['threads']}, "
        f"job processes {before['job_processes']}→{after['job_processes']}, "
        f"zombies {before['zombies']}→{after['zombies']}"
    )


def fig9_soak(docs: Docs) -> list[Line]:
    ingest = docs.get("ingest")
    soak = dig(ingest, "checks", "soak")
    goal = "flat ± 5 %, nothing left"
    if not soak:
        return [Line(9, "create/start/stop cycles", SQLITE, "—", "—", goal, "", "no data")]
    fig = dig(ingest, "figures", "soak_cycle")
    flat = all(abs(v) <= 0.05 for v in soak["change"].values())
    clean = soak["after"]["job_processes"] == 0 and soak["after"]["zombies"] == 0
    return [
        Line(
            figure=9,
            what=f"{soak['cycles']} create/start/stop cycles ({soak['kind']} jobs)",
            backend=SQLITE,
            p50=f"cycle {ms(dig(fig, 'p50_ms'))}",
            p99=f"cycle p99 {ms(dig(fig, 'p99_ms'))}; {soak_resources(soak)}",
            goal=goal,
            comparison=f"{soak['cycles_per_s']} cycles/s, {soak['concurrency']} in flight",
            verdict=verdict(flat and clean),
        )
    ]


FIGURES: list[Callable[[Docs], list[Line]]] = [
    fig1_stop,
    fig2_stop_api,
    fig3_start,
    fig4_push,
    fig5_overhead,
    fig6_ingest,
    fig7_restore,
    fig8_list,
    fig9_soak,
]


# ---------------------------------------------------------------------------- the markdown


def machine(pg: str) -> dict[str, str]:
    import jupyter_server
    import psutil

    model = cpu_model() or "unknown"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return {
        "CPU": f"{model}, {len(os.sched_getaffinity(0))} usable of {os.cpu_count()} CPUs",
        "Memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": pg,
        "jupyter_server": jupyter_server.__version__,
        "Commit": commit or "unknown",
        "Date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "Load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def table(lines: list[Line]) -> list[str]:
    out = [
        "| # | figure | backend | p50 | p99 (or rate) | goal | comparison | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ln in lines:
        cells = [str(ln.figure), ln.what, ln.backend, ln.p50, ln.p99, ln.goal, ln.comparison]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + f" | {ln.verdict} |")
    return out


def step_lines(outcomes: dict[str, Outcome]) -> list[str]:
    out = ["| step | backend | script and options | time | status |", "|---|---|---|---|---|"]
    for o in outcomes.values():
        opts = " ".join(o.args)
        status = o.error or f"exit {o.returncode}" + (" (problems: below)" if o.returncode else "")
        if o.leftovers:
            status += f"; {len(o.leftovers)} leftover process(es) killed"
        out.append(
            f"| {o.step.name} | {o.step.backend} | `{o.step.script} {opts}`".rstrip()
            + f" | {o.seconds:.0f} s | {status} |"
        )
    return out


def problem_lines(outcomes: dict[str, Outcome]) -> list[str]:
    out = []
    for o in outcomes.values():
        for text in (o.doc or {}).get("problems", []):
            out.append(f"- {o.step.name} ({o.step.backend}): {text}")
        for text in [a.get("text", "") for a in (o.doc or {}).get("anomalies", [])]:
            out.append(f"- {o.step.name}: {text}")
        if o.error:
            out.append(f"- {o.step.name} ({o.step.backend}): {o.error}")
        if o.leftovers:
            out.append(f"- {o.step.name}: job processes left behind and killed: {o.leftovers}")
    return out or ["none"]


def render(outcomes: dict[str, Outcome], info: dict[str, str], smoke: bool, total_s: float) -> str:
    docs: Docs = {name: o.doc for name, o in outcomes.items()}
    docs["run"] = {"smoke": smoke}
    lines = [ln for build in FIGURES for ln in build(docs)]
    size = "smoke (tiny sizes: the numbers mean nothing)" if smoke else "full"
    parts = [
        "# Benchmark results",
        "",
        f"Written by `benchmarks/run_all.py` ({size} run, {total_s / 60:.1f} min in total).",
        "Every latency is a distribution over the run; the verdict compares p99 with the goal",
        "unless the goal says otherwise. Comparisons were measured in the same run.",
        "",
        "## Machine",
        "",
        *(f"- **{k}**: {v}" for k, v in info.items()),
        "",
        "## Figures",
        "",
        *table(lines),
        "",
        "## Steps",
        "",
        *step_lines(outcomes),
        "",
        "## Problems the scripts reported",
        "",
        *problem_lines(outcomes),
        "",
        "## How to reproduce",
        "",
        "`make bench` on a clean clone (it installs the test extras; PostgreSQL comes from",
        "Debian's `postgresql` package, which `make test` installs; jupyter-scheduler is",
        "installed from PyPI into `benchmarks/.cache/`), or `.venv/bin/python",
        "benchmarks/run_all.py [--smoke] [--out PATH]`. Each script also runs alone; see its",
        "docstring (`--smoke`, `--json`, size options).",
        "",
    ]
    return "\n".join(parts)


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes (the test suite runs this)")
    p.add_argument("--out", help=f"markdown to write (default {RESULTS}; smoke: a temp file)")
    names = ",".join(s.name for s in STEPS)
    p.add_argument("--only", default="", help=f"comma-separated steps: {names}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    only = {s for s in args.only.split(",") if s}
    steps = [s for s in STEPS if not only or s.name in only]
    out = Path(args.out) if args.out else None
    if out is None:
        out = Path(tempfile.mkstemp(suffix="-RESULTS.md")[1]) if args.smoke else RESULTS
    info = machine(pg_version(pg_bin()))
    run_dir = Path(tempfile.mkdtemp(prefix="jobctl-run-all-"))
    t0 = time.perf_counter()
    try:
        outcomes = run_steps(steps, args.smoke, run_dir)
    except KeyboardInterrupt:
        print("interrupted: every step was ended and cleaned up", flush=True)
        return 130
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    total = time.perf_counter() - t0
    out.write_text(render(outcomes, info, args.smoke, total))
    print("\n=== timing per step")
    for o in outcomes.values():
        print(f"  {o.step.name:<10} {o.step.backend:<10} {o.seconds:7.1f} s  {o.error or 'ok'}")
    print(f"  {'total':<21} {total:7.1f} s\nwrote {out}")
    return 1 if any(o.error for o in outcomes.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
