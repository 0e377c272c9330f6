"""Dask benchmark: the dask executor against the local one, and PostgreSQL's NOTIFY against
the tail poll, each measured against its baseline in the same run (machines are noisy).

It starts everything it measures: a throw-away PostgreSQL cluster (`tests/harness.py`,
a fresh database per server group), a real `dask scheduler` with two `dask worker`
processes, and `jupyter server` subprocesses with the extension. Run from the repository
root:

    .venv/bin/python benchmarks/dask_bench.py                   # every figure, full size
    .venv/bin/python benchmarks/dask_bench.py --smoke           # tiny sizes, < 2 min
    .venv/bin/python benchmarks/dask_bench.py --only=push,idle --push-rounds=5
    .venv/bin/python benchmarks/dask_bench.py --stop-runs=15 --json=/tmp/dask.json

Every size has its own option (`--stop-runs`, `--tick-seconds`, …: see below). Figures:

stop: POST /stop -> the `cancelled` status frame on the job's WebSocket, for a cooperative
   job (checkpoint every 5 ms), on a server with `--JobCtl.executor=dask` (the job runs on
   a Dask worker) and on one with the local executor; the same PostgreSQL, so the executor
   is the only difference. "early": stopped as soon as its `running` frame arrives (what a
   user who clicks Stop in the first second sees; this job has no ready line, its code
   goes straight to its checkpoints); "steady": a job that first waits for its database
   connection (`job.flush()`) and logs its ready line, stopped once that line arrived.
   `--stop-runs` per case and executor, one job at a time, the variants interleaved run
   by run (their order alternating). Also: POST /start -> the `running` frame, and the
   POST /stop round trip. p50/p90/max, dask/local.
latency: a ticker job's `job.log` call (each line carries its wall time) -> the frame
   received by a WebSocket client of the server that started it: 20 lines/s for
   `--tick-seconds`, `--tick-rounds` jobs per executor, interleaved. p50/p90/p99, dask/local.
push: two or more servers on ONE database. Server A (local executor) starts ticker jobs;
   WebSocket clients of every server watch each job at once (the same events, so the
   variants are compared on identical input): A itself; B "notify" with
   `--JobCtl.listen_poll_interval=5` (its fallback poll every 5 s: a latency well under
   1 s was delivered by NOTIFY); B "notify, default" (fallback 0.5 s); B "poll" with
   `--JobCtl.listen=False` (the tail poll alone, every `tail_interval` = 25 ms).
   `--push-rounds` jobs of `--tick-seconds` each. p50/p90/p99, poll/notify.
idle: what each B variant costs the database while nothing happens: one server alone on a
   fresh database each, the database's transactions (`xact_commit + xact_rollback` of
   `pg_stat_database`) counted once a second for `--idle-seconds`; the median of those
   per-second rates (and the mean). Transactions, not statements: one tail look may be a
   few statements in one transaction.

The stop ladder is interrupt_after=0.5, stop_grace=2, kill_grace=0.5 (`--server-arg`
replaces one, for every server). Nothing sleeps to let things settle: the script waits
on conditions with generous timeouts. Whatever happens, every job still active is stopped
through the API, the servers' process groups are killed, the Dask cluster and PostgreSQL
are stopped, and any job process left (found by its database URL) is SIGKILLed and
reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import (
    TERMINAL,
    TIMEOUT,
    Api,
    JupyterServer,
    Line,
    Report,
    Stream,
    conclude,
    exit_on_sigterm,
    is_log,
    is_status,
    jobctl_options,
    merge_options,
    ms,
    percentile,
    recorded,
    target,
    targets,
)
from server_bench import LADDER, TICK_RATE, TICK_RE

from tests.harness import DaskCluster, PostgresCluster, job_pids, kill_pids, pg_bin

FIGURES = "stop,latency,push,idle"
EXECUTORS = ("dask", "local")
STOP_CASES = {
    "early": "stopped on its `running` frame",
    "steady": "stopped after its ready line",
}
COOP = {  # "steady" waits for the ready line; "early" does not (see tests/jobs.py:_ready)
    "early": target("cooperative", sleep=0.005, progress=False),
    "steady": target("cooperative", sleep=0.005, progress=False, ready=True),
}
PUSH = {  # B variants: their options on top of the defaults
    "notify": ["--JobCtl.listen_poll_interval=5"],
    "notify_default": [],
    "poll": ["--JobCtl.listen=False"],
}
PUSH_WHAT = {
    "A": "A, the server that started it",
    "notify": "B, NOTIFY (fallback poll 5 s)",
    "notify_default": "B, NOTIFY (fallback poll 0.5 s, default)",
    "poll": "B, `listen=False` (tail poll 25 ms)",
}
MAX_FAILURES = 3  # in a row: the figure is given up (each failure may cost a timeout)


@dataclass
class Sizes:
    stop_runs: int = 20  # per stop case and executor
    tick_seconds: float = 5.0
    tick_rounds: int = 2  # ticker jobs per executor
    push_rounds: int = 3  # ticker jobs, each watched from every server
    idle_seconds: float = 10.0


SMOKE = Sizes(stop_runs=2, tick_seconds=1.0, tick_rounds=1, push_rounds=1, idle_seconds=3.0)


# ---------------------------------------------------------------------------- servers


class Servers:
    """The benchmark's Jupyter servers (stopped at the end whatever happens)."""

    def __init__(self, home: Path, extra: Sequence[str]) -> None:
        self.home, self.extra = home, list(extra)
        self.all: list[JupyterServer] = []

    async def start(
        self, specs: dict[str, tuple[str, list[str]]], report: Report
    ) -> dict[str, JupyterServer]:
        """Servers named by ``specs`` (name -> (db_url, options)), started concurrently."""
        made = {}
        for name, (db_url, options) in specs.items():
            argv = merge_options(jobctl_options(db_url, **LADDER), [*options, *self.extra])
            made[name] = JupyterServer(self.home / name, argv, name=name)
            self.all.append(made[name])
        took = await asyncio.gather(*(asyncio.to_thread(s.start) for s in made.values()))
        for name, seconds in zip(made, took):
            report.check(f"server_start_s_{name}", round(seconds, 2))
        return made

    def stop(self, servers: Sequence[JupyterServer] | None = None) -> None:
        for server in self.all if servers is None else servers:
            server.stop()


@contextlib.asynccontextmanager
async def apis(servers: dict[str, JupyterServer], dbs: dict[str, str], report: Report):
    """An Api per server; at the end every job still active is stopped through it."""
    made = {name: Api(server, dbs[name]) for name, server in servers.items()}
    try:
        yield made
    finally:
        for name, api in made.items():
            try:
                await api.stop_all()
            except Exception as exc:
                report.problem(f"stopping {name}'s jobs: {type(exc).__name__}: {exc}")
            for text in api.unexpected[:10]:
                report.problem(f"unexpected answer ({name}): {text}")
            api.close()


async def warm_up(api: Api) -> None:
    """One short job to completion (not measured): the first one pays for the imports, the
    Dask client's connection to the scheduler, the workers' first supervisor."""
    job = await api.create("training", target("quick"))
    await api.wait_jobs([job["id"]], lambda j: j["status"] in TERMINAL, "finished")


class Failures:
    """Counts failed runs in a row; gives the figure up after ``MAX_FAILURES``."""

    def __init__(self, report: Report, figure: str) -> None:
        self.report, self.figure, self.row = report, figure, 0

    def ok(self) -> None:
        self.row = 0

    def failed(self, what: str, exc: BaseException) -> None:
        self.report.problem(f"{self.figure} {what}: {type(exc).__name__}: {exc}")
        self.row += 1
        if self.row >= MAX_FAILURES:
            raise RuntimeError(f"{self.row} failures in a row: {self.figure} given up")


def alternating(names: Sequence[str], i: int) -> Sequence[str]:
    return names if i % 2 == 0 else list(reversed(names))


# ---------------------------------------------------------------------------- stop


def is_running(m: dict[str, Any]) -> bool:
    return m.get("event") == "status" and m["data"].get("status") == "running"


async def one_stop(api: Api, server: JupyterServer, case: str) -> dict[str, Any]:
    """A cooperative job watched from seq 0, started, stopped at the case's moment."""
    job = await api.create("training", COOP[case], start=False)
    stream = await Stream.open(server, job["id"])
    try:
        t_start = time.perf_counter()
        await api.call("POST", f"/jobs/{job['id']}/start")
        running = await stream.wait_for(is_running)
        if case == "steady":
            await stream.wait_for(is_log(targets.READY))
        mark, t0 = len(stream.frames), time.perf_counter()
        rtt, _ = await api.call("POST", f"/jobs/{job['id']}/stop", expect=(202,))
        cancelled = await stream.wait_for(is_status("cancelled"), start=mark)
        await stream.wait_for(lambda m: m["type"] == "done", start=mark)
    finally:
        await stream.close()
        await api.settle([job["id"]])
    row = await api.get(job["id"])
    return {"start": running.t - t_start, "rtt": rtt, "stop": cancelled.t - t0, "row": row}


async def bench_stop(env: dict[str, Any], sizes: Sizes, report: Report) -> None:
    servers, api_of, fails = env["servers"], env["apis"], Failures(report, "stop")
    endings: dict[str, Counter[str]] = {}
    print(f"[stop] {sizes.stop_runs} runs per case and executor, interleaved", flush=True)
    for i in range(sizes.stop_runs):
        for case in STOP_CASES:
            for ex in alternating(EXECUTORS, i):
                try:
                    got = await one_stop(api_of[ex], servers[ex], case)
                except Exception as exc:
                    fails.failed(f"{case} {ex}", exc)
                    continue
                fails.ok()
                row = got["row"]
                ending = f"{row['status']} exit={row.get('exit_code')} {row.get('signal')}"
                endings.setdefault(f"{case}_{ex}", Counter())[ending] += 1
                if row["status"] != "cancelled":
                    report.problem(f"stop {case} {ex}: job {row['id']} ended {ending}")
                    continue
                report.add(f"stop_{case}_{ex}", got["stop"])
                report.add(f"stop_rtt_{ex}", got["rtt"])
                report.add(f"start_{ex}", got["start"])
        if (i + 1) % 5 == 0 or i + 1 == sizes.stop_runs:
            print(f"  {i + 1}/{sizes.stop_runs} rounds", flush=True)
    report.check("stop_endings", {k: dict(v) for k, v in endings.items()})


# ---------------------------------------------------------------------------- tickers


async def until_done(stream: Stream, seconds: float) -> Any:
    """The stream's `done` frame, waiting the job's own length plus the usual timeout."""
    deadline = time.monotonic() + seconds + TIMEOUT
    while True:
        try:
            return await stream.wait_for(lambda m: m["type"] == "done")
        except TimeoutError:
            if stream.closed or time.monotonic() > deadline:
                raise


async def tick_round(
    api: Api, watchers: dict[str, JupyterServer], seconds: float, report: Report
) -> dict[str, list[float]]:
    """A ticker job created through ``api``, watched from before its start by a client of
    each of ``watchers``: per watcher, its `job.log` calls -> the frames received."""
    job = await api.create("training", target("ticker", rate=TICK_RATE, seconds=seconds), False)
    streams: dict[str, Stream] = {}
    try:
        for name, server in watchers.items():
            streams[name] = await Stream.open(server, job["id"])
        await api.call("POST", f"/jobs/{job['id']}/start")
        dones = {name: await until_done(s, seconds) for name, s in streams.items()}
    finally:
        for stream in streams.values():
            await stream.close()
        await api.settle([job["id"]])
    out, expected = {}, int(seconds * TICK_RATE)
    for name, stream in streams.items():
        if dones[name].msg["status"] != "completed":
            report.problem(f"ticker {job['id']} ({name}) ended {dones[name].msg['status']!r}")
        lines = ((f, TICK_RE.match(f.msg.get("data", {}).get("line", ""))) for f in stream.frames)
        out[name] = [f.wall - float(match.group(1)) for f, match in lines if match]
        if len(out[name]) != expected:
            report.problem(f"ticker ({name}): {len(out[name])} tick lines, {expected} expected")
    return out


async def bench_latency(env: dict[str, Any], sizes: Sizes, report: Report) -> None:
    servers, api_of, fails = env["servers"], env["apis"], Failures(report, "latency")
    print(f"[latency] {sizes.tick_rounds} ticker jobs per executor, interleaved", flush=True)
    for i in range(sizes.tick_rounds):
        for ex in alternating(EXECUTORS, i):
            try:
                seen = await tick_round(api_of[ex], {ex: servers[ex]}, sizes.tick_seconds, report)
            except Exception as exc:
                fails.failed(ex, exc)
                continue
            fails.ok()
            report.add(f"event_to_ws_{ex}", seen[ex])


async def bench_push(env: dict[str, Any], sizes: Sizes, report: Report) -> None:
    servers, api, fails = env["servers"], env["apis"]["A"], Failures(report, "push")
    print(f"[push] {sizes.push_rounds} ticker jobs via A, watched from {list(servers)}", flush=True)
    for _ in range(sizes.push_rounds):
        try:
            seen = await tick_round(api, servers, sizes.tick_seconds, report)
        except Exception as exc:
            fails.failed("round", exc)
            continue
        fails.ok()
        for name, values in seen.items():
            report.add(f"push_{name}", values)
    notify = report.samples.get("push_notify", [])
    late = sum(v >= 1.0 for v in notify)
    report.check("push_notify_samples_over_1s", late)
    if notify and percentile(notify, 50) >= 1.0:
        report.problem("push: B with a 5 s fallback poll has p50 >= 1 s: NOTIFY did not wake it")


# ---------------------------------------------------------------------------- idle


def xacts(admin_url: str, names: list[str]) -> dict[str, int]:
    """Transactions so far of each database (read from the `postgres` database)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname, xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = ANY(%s)",
            (names,),
        ).fetchall()
    return {name: int(n) for name, n in rows}


async def bench_idle(env: dict[str, Any], sizes: Sizes, report: Report) -> None:
    dbs: dict[str, str] = env["dbs"]  # variant -> its own database, only its server on it
    names = {variant: url.rsplit("/", 1)[1] for variant, url in dbs.items()}
    admin = f"postgresql://jobctl@127.0.0.1:{env['pg'].port}/postgres"
    n = max(1, round(sizes.idle_seconds))
    print(f"[idle] transactions/s of each B alone on its database, {n} s", flush=True)

    async def sample() -> tuple[float, dict[str, int]]:
        return time.perf_counter(), await asyncio.to_thread(xacts, admin, [*names.values()])

    samples = [await sample()]
    for _ in range(n):
        await asyncio.sleep(1.0)  # the sampling period, not a wait for anything
        samples.append(await sample())
    out = {}
    for variant, db in names.items():
        rates = [(b[db] - a[db]) / (tb - ta) for (ta, a), (tb, b) in itertools.pairwise(samples)]
        (t0, first), (t1, last) = samples[0], samples[-1]
        out[variant] = {
            "median_per_s": round(percentile(rates, 50), 1),
            "mean_per_s": round((last[db] - first[db]) / (t1 - t0), 1),
            "max_per_s": round(max(rates), 1),
            "window_s": round(t1 - t0, 1),
        }
    report.check("idle_xacts", out)


# ---------------------------------------------------------------------------- phases


async def phase_executors(args: argparse.Namespace, report: Report, ctx: dict[str, Any]) -> None:
    """stop, latency: a dask-executor and a local-executor server, a database each."""
    pg, dask, servers = ctx["pg"], ctx["dask"], ctx["servers"]
    print("starting a Dask scheduler and 2 workers", flush=True)
    await asyncio.to_thread(dask.start)
    dbs = {ex: pg.create_database(ex) for ex in EXECUTORS}
    dask_opts = ["--JobCtl.executor=dask", f"--JobCtl.dask_address={dask.address}"]
    specs = {"dask": (dbs["dask"], dask_opts), "local": (dbs["local"], [])}
    pair = await servers.start(specs, report)
    try:
        async with apis(pair, dbs, report) as api_of:
            await asyncio.gather(*(warm_up(api) for api in api_of.values()))
            env = {"servers": pair, "apis": api_of}
            for name, fn in (("stop", bench_stop), ("latency", bench_latency)):
                if not args.only or name in args.only:
                    await figure(fn, env, args.sizes, report)
    finally:
        servers.stop(list(pair.values()))


async def phase_push(args: argparse.Namespace, report: Report, ctx: dict[str, Any]) -> None:
    """push: server A and the B variants on one database."""
    db = ctx["pg"].create_database("push")
    specs = {"A": (db, []), **{v: (db, opts) for v, opts in PUSH.items()}}
    group = await ctx["servers"].start(specs, report)
    try:
        async with apis(group, dict.fromkeys(group, db), report) as api_of:
            await warm_up(api_of["A"])
            await figure(bench_push, {"servers": group, "apis": api_of}, args.sizes, report)
    finally:
        ctx["servers"].stop(list(group.values()))


async def phase_idle(args: argparse.Namespace, report: Report, ctx: dict[str, Any]) -> None:
    """idle: each B variant alone on a database of its own."""
    dbs = {v: ctx["pg"].create_database(f"idle_{v}") for v in PUSH}
    group = await ctx["servers"].start({v: (dbs[v], opts) for v, opts in PUSH.items()}, report)
    try:
        await figure(bench_idle, {"dbs": dbs, "pg": ctx["pg"]}, args.sizes, report)
    finally:
        ctx["servers"].stop(list(group.values()))


async def figure(fn: Callable[..., Any], env: dict[str, Any], sizes: Sizes, report: Report) -> None:
    """One figure; its failure is reported, the others still run."""
    t0 = time.perf_counter()
    try:
        await fn(env, sizes, report)
    except Exception as exc:
        report.problem(f"figure {fn.__name__}: {type(exc).__name__}: {exc}")
    print(f"    ({fn.__name__}: {time.perf_counter() - t0:.1f} s)", flush=True)


PHASES = (("stop,latency", phase_executors), ("push", phase_push), ("idle", phase_idle))


async def run(args: argparse.Namespace, report: Report, ctx: dict[str, Any]) -> None:
    """Each group of figures on its own servers, stopped after it (to free the CPU); a group
    that fails (a server that does not start) is reported and the next one still runs."""
    for names, phase in PHASES:
        if not args.only or args.only & set(names.split(",")):
            try:
                await phase(args, report, ctx)
            except Exception as exc:
                report.problem(f"{names}: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------- results


def stats(values: Sequence[float]) -> dict[str, float]:
    got = [v * 1000.0 for v in values]
    return {
        "n": len(got),
        **{f"p{q}_ms": percentile(got, q) for q in (50, 90, 99)},
        "max_ms": max(got, default=math.nan),
    }


def ratio(a: dict[str, float] | None, b: dict[str, float] | None, key: str) -> float:
    if not a or not b or not b.get(key) or not math.isfinite(a.get(key, math.nan)):
        return math.nan
    return a[key] / b[key]


def times(value: float) -> str:
    return f"{value:.2f}x" if math.isfinite(value) else "—"


def table(doc: dict[str, Any]) -> list[str]:
    """The results as text: one block per figure, each with its ratio line."""
    st, checks, out = doc["stats"], doc["checks"], []
    head = f"    {'variant':<44} {'n':>4} {'p50':>9} {'p90':>9} {'p99':>9} {'max':>9}"

    def block(title: str, keys: dict[str, str], ratios: list[tuple[str, str, str]]) -> None:
        if not any(k in st for k in keys):
            return
        out.extend(["", title, head])
        for key, what in keys.items():
            s = st.get(key) or {"n": 0}
            cols = [ms(s.get(f"{c}_ms")) for c in ("p50", "p90", "p99", "max")]
            out.append(f"    {what:<44} {s['n']:>4} " + " ".join(f"{c:>9}" for c in cols))
        for label, a, b in ratios:
            qs = [
                times(ratio(st.get(a), st.get(b), f"{c}_ms")) for c in ("p50", "p90", "p99", "max")
            ]
            out.append(f"    {label:<44} {'':>4} " + " ".join(f"{q:>9}" for q in qs))

    for case, what in STOP_CASES.items():
        block(
            f"[stop] POST /stop → `cancelled` on the job's WS, cooperative job, {what}",
            {f"stop_{case}_{ex}": f"{ex} executor" for ex in EXECUTORS},
            [("ratio dask/local", f"stop_{case}_dask", f"stop_{case}_local")],
        )
    for key, title in (
        ("start", "[stop] POST /start → `running` on the WS (the same jobs)"),
        ("stop_rtt", "[stop] POST /stop round trip (the same jobs)"),
        (
            "event_to_ws",
            "[latency] worker `job.log` → WS client of the starting server (ticker, 20 lines/s)",
        ),
    ):
        block(
            title,
            {f"{key}_{ex}": f"{ex} executor" for ex in EXECUTORS},
            [("ratio dask/local", f"{key}_dask", f"{key}_local")],
        )
    block(
        "[push] ticker job started through A → WS client of each server, one database",
        {f"push_{k}": what for k, what in PUSH_WHAT.items()},
        [
            ("ratio poll/notify", "push_poll", "push_notify"),
            ("ratio poll/notify default", "push_poll", "push_notify_default"),
            ("ratio notify/A", "push_notify", "push_A"),
        ],
    )
    if idle := checks.get("idle_xacts"):
        out += ["", "[idle] database transactions/s of one B alone on its database, idle"]
        out.append(f"    {'variant':<44} {'median/s':>9} {'mean/s':>9} {'max/s':>9}")
        for v, x in idle.items():
            cols = (x["median_per_s"], x["mean_per_s"], x["max_per_s"])
            out.append(f"    {PUSH_WHAT[v]:<44} " + " ".join(f"{c:>9}" for c in cols))
        if "poll" in idle and "notify" in idle and idle["notify"]["median_per_s"]:
            r = idle["poll"]["median_per_s"] / idle["notify"]["median_per_s"]
            out.append(f"    {'ratio poll/notify (median)':<44} {times(r):>9}")
    return out


def rows(doc: dict[str, Any], backend: str) -> list[Line]:
    """Rows of the results table (``run_all.py``'s format), from what ``--json`` wrote."""
    st, out = doc.get("stats", {}), []

    def line(figure: int, what: str, key: str, base: str, label: str) -> None:
        if key in st:
            s, r = st[key], ratio(st.get(key), st.get(base), "p50_ms")
            note = f"p50 {times(r)} {label}; n={s['n']}"
            out.append(Line(figure, what, backend, ms(s["p50_ms"]), ms(s["p99_ms"]), "—", note))

    local = "of the local executor's"
    for case, what in STOP_CASES.items():
        what = f"stop → `cancelled` on WS, dask executor, {what}"
        line(1, what, f"stop_{case}_dask", f"stop_{case}_local", local)
    line(
        4,
        "worker `job.log` → WS client, dask executor",
        "event_to_ws_dask",
        "event_to_ws_local",
        local,
    )
    line(4, "`job.log` → WS of another server, NOTIFY", "push_notify", "push_poll", "of the poll's")
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """--smoke, --json, --only, --server-arg and one option per size (as ``common.parse``,
    without its --db-url: this script starts its own PostgreSQL)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes (the numbers mean nothing)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    p.add_argument("--backend", default="PostgreSQL", help="the backend named in the rows")
    p.add_argument("--only", default="", help=f"comma-separated figures: {FIGURES}")
    p.add_argument(
        "--server-arg", action="append", default=[], metavar="ARG",
        help="a jupyter server option for every server, e.g. --JobCtl.stop_grace=3",
    )  # fmt: skip
    for name, value in asdict(Sizes()).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=None)
    args = p.parse_args(argv)
    args.sizes = Sizes(**asdict(SMOKE if args.smoke else Sizes()))
    for name in asdict(args.sizes):
        if getattr(args, name) is not None:
            setattr(args.sizes, name, getattr(args, name))
    args.only = {s for s in args.only.split(",") if s}
    if unknown := args.only - set(FIGURES.split(",")):
        p.error(f"--only: unknown figure(s) {sorted(unknown)}; known: {FIGURES}")
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return args


def cleanup(ctx: dict[str, Any], report: Report) -> None:
    """Servers, job processes (waited for a while, then killed and reported), Dask, PG."""
    pg, dask, servers = ctx["pg"], ctx["dask"], ctx["servers"]
    servers.stop()
    prefix = f"{pg.url}/"  # every database of this cluster (the port is followed by "/")
    deadline = time.monotonic() + 10  # a job that just ended may still be exiting
    while job_pids(prefix) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left := kill_pids(job_pids(prefix)):
        report.problem(f"{len(left)} job process(es) outlived the clean-up: {left}")
    dask.stop()
    kill_pids(job_pids(prefix))  # the workers took their supervisors along; just in case
    errors = []
    for server in servers.all:
        lines = server.tail(10**6).splitlines()
        errors += [f"{server.name}: {ln}" for ln in lines if ln.startswith("[E ")]
    report.check("server_log_errors", errors[:10])
    pg.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report, home = Report(), Path(tempfile.mkdtemp(prefix="jobctl-dask-bench-"))
    bin_dir = pg_bin()
    if bin_dir is None:
        print("PostgreSQL is not installed (/usr/lib/postgresql/*/bin): nothing to measure")
        return 1
    ctx = {
        "pg": PostgresCluster(bin_dir),
        "dask": DaskCluster(home / "dask"),
        "servers": Servers(home, args.server_arg),
    }
    print(f"dask benchmark: {asdict(args.sizes)}; figures: {sorted(args.only) or FIGURES}")
    t0 = time.perf_counter()
    try:
        with recorded(report):
            ctx["pg"].start()
            report.check("postgresql", ctx["pg"].version())
            asyncio.run(run(args, report, ctx))
    finally:
        with recorded(report):
            cleanup(ctx, report)
        shutil.rmtree(home, ignore_errors=True)
    report.check("total_s", round(time.perf_counter() - t0, 1))
    doc = report.doc(sizes=asdict(args.sizes), ladder=LADDER, server_args=args.server_arg)
    doc["stats"] = {key: stats(values) for key, values in report.samples.items()}
    print("\n".join(table(doc)))
    return conclude(report, doc, args.json, width=32)


if __name__ == "__main__":
    sys.exit(main())
