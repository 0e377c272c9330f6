"""Server benchmark: the jobctl API of a real `jupyter server` subprocess, with the
extension on SQLite in a temporary directory (or on `--db-url`).

Run from the repository root:

    .venv/bin/python benchmarks/server_bench.py                 # every figure, full size
    .venv/bin/python benchmarks/server_bench.py --smoke         # tiny sizes, < 1 min
    .venv/bin/python benchmarks/server_bench.py --only=stop,ingest --db-url postgresql+psycopg://…
    .venv/bin/python benchmarks/server_bench.py --only=ingest --server-arg=--JobCtl.job_nice=5

Every size has its own option (`--stop-runs`, `--ingest-seconds`, …: see `--help`). Figures:

stop (1, 2): stop -> `cancelled` received on the job's WebSocket for a cooperative job
   (checkpoint every 5 ms), one blocked in `time.sleep` (the SIGINT rung) and a `command`
   ignoring SIGINT/SIGTERM (the SIGKILL rung); and the `POST /stop` round trip. Jobs start
   `--stop-batch` at a time; once each logged its ready line they are stopped one by one
   `--stop-stagger` apart, so no process start-up overlaps a measurement.
latency (4): a worker's `job.log` call -> the frame received by a WebSocket client
   (20 lines/s for `--tick-seconds`), idle and while `--load-jobs` jobs log
   `--load-rate` lines/s each.
ingest (6): `--ingest-jobs` jobs report events as fast as the store takes them while
   `--ingest-clients` WebSocket clients (in `--client-procs` processes) follow them:
   events/s stored, delivered, and `GET /health` from a separate prober meanwhile; first
   the same jobs without clients (`--ingest-baseline-seconds`, 0: skip). Every client must
   see each seq at most once and in order.
soak (9): `--soak-cycles` create/start/stop cycles of `command` jobs (`--soak-concurrency`
   in flight) after `--soak-warmup`: the server's RSS, FDs, threads, children and job
   processes before and after.
list (8): `GET /jobs?limit=50` after `--list-jobs` finished jobs were written straight
   into the database.

The stop ladder is interrupt_after=0.5, stop_grace=2, kill_grace=0.5 (`--server-arg`
replaces one). Nothing sleeps to let things settle: the script waits on conditions with
generous timeouts. Whatever happens, every job still active is stopped through the API,
the server's process group is killed and any process carrying the database in its
environment is SIGKILLed (and reported).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing as mp
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from common import (
    TERMINAL,
    TIMEOUT,
    Api,
    ApiError,
    CpuMeter,
    JupyterServer,
    Line,
    Prober,
    Report,
    Stream,
    fill_jobctl,
    finish,
    is_log,
    is_status,
    jobctl_options,
    latency,
    merge_options,
    ms,
    parse,
    rate,
    recorded,
    target,
    targets,
    verdict,
    ws_connect,
)

from tests.harness import job_pids, kill_pids

LADDER = {"interrupt_after": 0.5, "stop_grace": 2, "kill_grace": 0.5}
TICK_RATE = 20.0  # ticker lines/s
TICK_RE = re.compile(rf"^{targets.TICK} \d+ t=(\d+\.\d+)$")
FIGURES = "stop,latency,ingest,soak,list"


@dataclass
class Sizes:
    stop_runs: int = 50  # per stop path
    stop_batch: int = 10
    stop_stagger: float = 0.15
    tick_seconds: float = 5.0
    load_jobs: int = 8
    load_rate: float = 1000.0  # log lines/s per load job
    ingest_jobs: int = 8
    ingest_clients: int = 50
    client_procs: int = 2
    ingest_warmup: float = 2.0
    ingest_seconds: float = 10.0
    ingest_baseline_seconds: float = 5.0
    catch_up_timeout: float = 5.0
    soak_cycles: int = 1000
    soak_warmup: int = 20
    soak_concurrency: int = 8
    list_jobs: int = 10_000
    list_gets: int = 30


SMOKE = Sizes(
    stop_runs=1, stop_batch=1, tick_seconds=1.0, load_jobs=1, load_rate=200.0, ingest_jobs=1,
    ingest_clients=2, client_procs=1, ingest_warmup=0.5, ingest_seconds=1.5,
    ingest_baseline_seconds=1.0, catch_up_timeout=3.0, soak_cycles=10, soak_warmup=3,
    soak_concurrency=2, list_jobs=200, list_gets=5,
)  # fmt: skip


# ---------------------------------------------------------------------------- 1, 2: stop


@dataclass
class StopCase:
    key: str
    what: str
    kind: str
    spec: dict[str, Any]
    rung: tuple[str, ...]  # the ladder options whose sum is the rung's delay
    expect: dict[str, Any]  # what the finished job row must carry


STOP_CASES = [
    StopCase(
        "stop_coop", "cooperative (checkpoint every 5 ms)", "training",
        target("cooperative", sleep=0.005, progress=False, ready=True), (), {"exit_code": 0},
    ),
    StopCase(
        "stop_sleep", "blocked in `time.sleep`", "training",
        target("sleeper", seconds=600, ready=True), ("interrupt_after",), {"exit_code": 130},
    ),
    StopCase(
        "stop_stubborn", "`command` ignoring SIGINT/SIGTERM", "command",
        {"argv": [sys.executable, targets.__file__, "stubborn"]},
        ("stop_grace", "kill_grace"), {"signal": "SIGKILL"},
    ),
]  # fmt: skip


async def armed(api: Api, server: JupyterServer, case: StopCase, ids: list[str]) -> Stream:
    """A job watched from seq 0, started, that logged its ready line."""
    job = await api.create(case.kind, case.spec, start=False)
    ids.append(job["id"])
    stream = await Stream.open(server, job["id"])
    try:
        await api.call("POST", f"/jobs/{job['id']}/start")
        await stream.wait_for(is_log(targets.READY))
    except BaseException:
        await stream.close()
        raise
    return stream


async def stop_watched(api: Api, stream: Stream, delay: float) -> tuple[float, float, dict]:
    """After ``delay``: POST stop; (its round trip, stop -> `cancelled` on the WS, the row)."""
    await asyncio.sleep(delay)  # the stagger of the batch: one stop at a time
    mark, t0 = len(stream.frames), time.perf_counter()
    rtt, _ = await api.call("POST", f"/jobs/{stream.job_id}/stop", expect=(202,))
    cancelled = await stream.wait_for(is_status("cancelled"), start=mark)
    await stream.wait_for(lambda m: m["type"] == "done", start=mark)
    return rtt, cancelled.t - t0, await api.get(stream.job_id)


async def bench_stop(api: Api, server: JupyterServer, sizes: Sizes, report: Report) -> None:
    for case in STOP_CASES:
        delay = sum(float(server.option(f"--JobCtl.{name}") or 0) for name in case.rung)
        report.check(f"{case.key}_rung_s", delay)
        print(f"[1] stop, {case.what}: {sizes.stop_runs} runs (rung at {delay:g} s)", flush=True)
        endings: Counter[str] = Counter()
        for done in range(0, sizes.stop_runs, sizes.stop_batch):
            ids: list[str] = []
            n = min(sizes.stop_batch, sizes.stop_runs - done)
            arming = await asyncio.gather(
                *(armed(api, server, case, ids) for _ in range(n)), return_exceptions=True
            )
            streams = [s for s in arming if isinstance(s, Stream)]
            try:
                stops = [
                    stop_watched(api, s, k * sizes.stop_stagger) for k, s in enumerate(streams)
                ]
                for result in [*arming, *await asyncio.gather(*stops, return_exceptions=True)]:
                    if isinstance(result, BaseException):
                        report.problem(f"{case.key}: {type(result).__name__}: {result}")
                    elif isinstance(result, tuple):
                        rtt, to_cancelled, row = result
                        ending = f"{row['status']} exit={row.get('exit_code')} {row.get('signal')}"
                        endings[ending] += 1
                        if row["status"] != "cancelled" or any(
                            row.get(k) != v for k, v in case.expect.items()
                        ):
                            report.problem(f"{case.key}: job {row['id']} ended {ending}")
                            continue
                        report.add("stop_rtt", rtt)
                        report.add(case.key, to_cancelled)
            finally:
                for stream in streams:
                    await stream.close()
                await api.settle(ids)
        report.check(f"{case.key}_endings", dict(endings))


# ---------------------------------------------------------------------------- 4: push latency


async def ticker(api: Api, server: JupyterServer, sizes: Sizes, report: Report) -> list[float]:
    """A ticker job watched from before its start: its log calls -> frames received."""
    spec = target("ticker", rate=TICK_RATE, seconds=sizes.tick_seconds)
    job = await api.create("training", spec, start=False)
    stream = await Stream.open(server, job["id"])
    try:
        await api.call("POST", f"/jobs/{job['id']}/start")
        done = await stream.wait_for(lambda m: m["type"] == "done")
    finally:
        await stream.close()
    if done.msg["status"] != "completed":
        report.problem(f"ticker job {job['id']} ended {done.msg['status']!r}")
    lines = ((f, TICK_RE.match(f.msg.get("data", {}).get("line", ""))) for f in stream.frames)
    seen = [f.wall - float(match.group(1)) for f, match in lines if match]
    if len(seen) != int(sizes.tick_seconds * TICK_RATE):
        report.problem(f"ticker: {len(seen)} tick lines on the WS, expected more")
    return seen


async def bench_latency(api: Api, server: JupyterServer, sizes: Sizes, report: Report) -> None:
    print("[4] worker job.log -> WS client, idle ...", flush=True)
    report.add("event_to_ws_idle", await ticker(api, server, sizes, report))
    k = sizes.load_jobs
    print(f"[4] ... and while {k} jobs log {sizes.load_rate:g} lines/s each", flush=True)
    spec = target("firehose", rate=sizes.load_rate)
    ids = [(await api.create("training", spec))["id"] for _ in range(k)]
    try:
        await api.wait_jobs(ids, lambda j: j["last_seq"] > 100, "writing")

        async def total() -> int:
            return sum(j["last_seq"] for j in await asyncio.gather(*map(api.get, ids)))

        seq0, t0 = await total(), time.perf_counter()
        report.add("event_to_ws_load", await ticker(api, server, sizes, report))
        report.check(
            "load_events_per_s", round((await total() - seq0) / (time.perf_counter() - t0))
        )
        report.check("load_events_per_s_target", round(k * sizes.load_rate))
    finally:
        await api.settle(ids)


# ---------------------------------------------------------------------------- 6: ingest


def new_follower(job_id: str) -> dict[str, Any]:
    return {"job_id": job_id, "count": 0, "last": 0, "gaps": 0, "duplicates": 0}


async def follow(server: JupyterServer, f: dict[str, Any], connected: asyncio.Event) -> None:
    """Read a job's stream from seq 0 to its end, counting gaps and duplicates in ``f``."""
    try:
        conn = await ws_connect(server, f"/jobs/{f['job_id']}/stream?after=0")
    except Exception as exc:
        f["error"] = f"connect: {exc!r}"
        connected.set()
        return
    while (raw := await conn.read_message()) is not None:
        msg = json.loads(raw)
        if msg["type"] == "event":
            f["count"] += 1
            f["duplicates" if msg["seq"] <= f["last"] else "gaps"] += msg["seq"] != f["last"] + 1
            f["last"] = max(f["last"], msg["seq"])
        elif msg["type"] == "snapshot":
            connected.set()
        elif msg["type"] == "done":
            f["done_last"] = msg["last_seq"]
    connected.set()


async def client_loop(port: int, token: str, job_ids: list[str], pipe: Any) -> None:
    server = SimpleNamespace(
        ws_url=f"ws://127.0.0.1:{port}", auth={"Authorization": f"token {token}"}
    )
    followers = [new_follower(j) for j in job_ids]
    events = [asyncio.Event() for _ in followers]
    tasks = [asyncio.ensure_future(follow(server, f, e)) for f, e in zip(followers, events)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), TIMEOUT)
    loop = asyncio.get_running_loop()
    while True:
        pipe.send({"cpu_s": time.process_time(), "clients": followers})
        command, arg = await loop.run_in_executor(None, pipe.recv)
        if command == "finish":  # wait (arg seconds at most) for every stream to end
            await asyncio.wait(tasks, timeout=arg)
            pipe.send({"cpu_s": time.process_time(), "clients": followers})
            return


def client_process(port: int, token: str, job_ids: list[str], pipe: Any) -> None:
    """In its own process: follows ``job_ids``' streams, answers the coordinator's pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator ends us
    asyncio.run(client_loop(port, token, job_ids, pipe))


class ClientPool:
    """WebSocket clients in separate processes, so that they do not share a GIL with the
    coordinator (which samples ``last_seq`` and runs the clock)."""

    def __init__(self, server: JupyterServer, ids: list[str], clients: int, procs: int) -> None:
        ctx = mp.get_context("spawn")
        assigned = [ids[i % len(ids)] for i in range(clients)]
        self.pipes, self.procs = [], []
        for mine in filter(None, (assigned[p::procs] for p in range(procs))):
            ours, theirs = ctx.Pipe()
            args = (server.port, server.token, mine, theirs)
            self.procs.append(ctx.Process(target=client_process, args=args, daemon=True))
            self.pipes.append(ours)

    async def ask(self, command: str | None, arg: float = 0.0) -> tuple[float, list[dict]]:
        """(CPU seconds the client processes used so far, every client's counts)."""
        for pipe in self.pipes if command else []:
            pipe.send((command, arg))

        async def recv(pipe: Any) -> dict[str, Any]:
            if not await asyncio.to_thread(pipe.poll, arg + TIMEOUT):
                raise TimeoutError("a WebSocket client process did not answer")
            return pipe.recv()

        states = await asyncio.gather(*map(recv, self.pipes))
        return sum(s["cpu_s"] for s in states), [c for s in states for c in s["clients"]]

    async def start(self) -> None:
        for proc in self.procs:
            proc.start()
        await self.ask(None)  # every client connected: every snapshot is in

    def close(self) -> None:
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


async def seq_sample(api: Api, ids: list[str]) -> tuple[float, dict[str, int]]:
    rows = await asyncio.gather(*map(api.get, ids))
    return time.perf_counter(), {j["id"]: j["last_seq"] for j in rows}


async def ingest_round(
    api: Api, server: JupyterServer, sizes: Sizes, clients: int, seconds: float, report: Report
) -> dict[str, Any]:
    """``ingest_jobs`` flood jobs followed by ``clients`` clients: one measured window."""
    spec = target("flood", chunk=200)
    ids = [
        (await api.create("training", spec, start=False))["id"] for _ in range(sizes.ingest_jobs)
    ]
    print(f"[6] {len(ids)} flood jobs, {clients} WS clients ...", flush=True)
    pool = ClientPool(server, ids, clients, sizes.client_procs if clients else 0)
    out: dict[str, Any] = {}
    try:
        await pool.start()
        await asyncio.gather(*(api.call("POST", f"/jobs/{i}/start") for i in ids))
        await api.wait_jobs(ids, lambda j: j["last_seq"] > 0 or j["status"] in TERMINAL, "writing")
        await asyncio.sleep(sizes.ingest_warmup)  # the rate is sustained, not the ramp-up
        async with Prober(server) as prober:
            cpu = CpuMeter(server)
            samples = [await seq_sample(api, ids)]
            cpu0, before = await pool.ask("mark")
            while samples[-1][0] < samples[0][0] + seconds:
                await asyncio.sleep(min(1.0, samples[0][0] + seconds - time.perf_counter()))
                samples.append(await seq_sample(api, ids))
            cpu1, after = await pool.ask("mark")
            out["health"], errors = await prober.result()
        if errors:
            report.problem(f"/health prober errors during ingest: {Counter(errors).most_common(3)}")
        (t0, s0), (t1, s1) = samples[0], samples[-1]
        wall = t1 - t0
        steps = [
            (sum(b.values()) - sum(a.values())) / (tb - ta)
            for (ta, a), (tb, b) in itertools.pairwise(samples)
        ]
        out["stored"] = {
            "events_per_s": round((sum(s1.values()) - sum(s0.values())) / wall),
            "slowest_interval_events_per_s": round(min(steps)),
            "window_s": round(wall, 2),
        }
        got = sum(b["count"] - a["count"] for a, b in zip(before, after))
        owed = sum(s1[c["job_id"]] - s0[c["job_id"]] for c in after)
        out["delivery"] = {
            "delivered_events_per_s": round(got / wall),
            "delivered_fraction": round(got / owed, 3) if owed else None,
            "lag_events_max": max((s1[c["job_id"]] - c["last"] for c in after), default=0),
        }
        out["cpu"] = {**cpu.result(), "ws_clients_cpu_s": round(cpu1 - cpu0, 2)}
        print(f"[6] stored {out['stored']}, delivery {out['delivery']}", flush=True)
        return out
    finally:
        await api.settle(ids)
        if clients:
            final = {i: (await api.get(i))["last_seq"] for i in ids}
            with contextlib.suppress(TimeoutError):
                _, followers = await pool.ask("finish", sizes.catch_up_timeout)
                check_followers(followers, final, report)
        pool.close()


def check_followers(clients: list[dict[str, Any]], final: dict[str, int], report: Report) -> None:
    """Each seq at most once and in order; a ``done`` names the job's last seq. A client
    still behind when the catch-up time is up is not an error (it is reported)."""
    gaps, dups = sum(c["gaps"] for c in clients), sum(c["duplicates"] for c in clients)
    wrong = [c for c in clients if c.get("done_last") not in (None, final[c["job_id"]])]
    behind = [final[c["job_id"]] - c["last"] for c in clients if c.get("done_last") is None]
    errors = [c["error"] for c in clients if c.get("error")]
    report.check("ingest_clients", {"gaps": gaps, "duplicates": dups, "behind_at_end": behind})
    if gaps or dups or wrong or errors:
        report.problem(
            f"ingest streams: {gaps} gaps, {dups} duplicates, {len(wrong)} wrong done, {errors[:3]}"
        )


async def bench_ingest(api: Api, server: JupyterServer, sizes: Sizes, report: Report) -> None:
    if sizes.ingest_baseline_seconds > 0:
        alone = await ingest_round(api, server, sizes, 0, sizes.ingest_baseline_seconds, report)
        report.add("health_during_ingest_no_clients", alone.pop("health"))
        report.check("ingest_no_clients", alone)
    main = await ingest_round(
        api, server, sizes, sizes.ingest_clients, sizes.ingest_seconds, report
    )
    report.add("health_during_ingest", main.pop("health"))
    report.check("ingest", main)


# ---------------------------------------------------------------------------- 9: soak


@dataclass
class ServerStats:
    rss_mib: float
    fds: int
    threads: int
    children: int
    zombies: int
    job_processes: int

    @classmethod
    def of(cls, server: JupyterServer, db_url: str) -> ServerStats:
        import psutil

        proc = psutil.Process(server.proc.pid if server.proc else 0)
        kids = proc.children(recursive=True)
        zombies = 0
        for kid in kids:
            with contextlib.suppress(psutil.Error):
                zombies += kid.status() == psutil.STATUS_ZOMBIE
        return cls(
            round(proc.memory_info().rss / 2**20, 1), proc.num_fds(), proc.num_threads(),
            len(kids), zombies, len(job_pids(db_url)),
        )  # fmt: skip


class StatusWatch:
    """Every job's latest status from one `WS /stream` (pushed: a soak of many cycles does
    not load the server with polls); a GET now and then as a safety net."""

    def __init__(self, api: Api) -> None:
        self.api, self.status, self.changed = api, dict[str, str](), asyncio.Event()

    async def __aenter__(self) -> StatusWatch:
        self.conn = await ws_connect(self.api.server, "/stream")
        self.task = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        while (raw := await self.conn.read_message()) is not None:
            if (msg := json.loads(raw)).get("type") == "job":
                self.status[msg["job"]["id"]] = msg["job"]["status"]
                self.changed.set()

    async def wait(self, job_id: str, wanted: set[str]) -> None:
        deadline, next_get = time.monotonic() + TIMEOUT, time.monotonic() + 2.0
        while self.status.get(job_id) not in wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {self.status.get(job_id)!r}")
            if time.monotonic() > next_get or self.task.done():
                self.status[job_id] = (await self.api.get(job_id))["status"]
                next_get = time.monotonic() + 2.0
                continue
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.5)

    async def __aexit__(self, *exc: object) -> None:
        self.conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 10)


async def soak_cycles(api: Api, watch: StatusWatch, sizes: Sizes, n: int) -> list[float]:
    """``n`` create+start / running / stop / terminal cycles, ``soak_concurrency`` at once."""
    times: list[float] = []
    todo = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            t0 = time.perf_counter()
            job = await api.create("command", {"argv": ["sleep", "600"]})
            await watch.wait(job["id"], {"running", "stopping", *TERMINAL})
            await api.call("POST", f"/jobs/{job['id']}/stop", expect=(202, 409))
            await watch.wait(job["id"], set(TERMINAL))
            times.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(sizes.soak_concurrency)))
    return times


async def settled(api: Api, server: JupyterServer) -> ServerStats:
    """Stats once the thread pools are at their size and no job process is left (30 s)."""
    await asyncio.gather(*(api.call("GET", "/jobs?limit=5") for _ in range(64)))
    deadline = time.monotonic() + 30
    while True:
        stats = ServerStats.of(server, api.db_url)
        if (not stats.job_processes and not stats.zombies) or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.1)


async def bench_soak(api: Api, server: JupyterServer, sizes: Sizes, report: Report) -> None:
    n = sizes.soak_cycles
    async with StatusWatch(api) as watch:
        print(f"[9] soak: {sizes.soak_warmup} warm-up cycles, then {n}", flush=True)
        await soak_cycles(api, watch, sizes, sizes.soak_warmup)
        before = await settled(api, server)
        t0 = time.perf_counter()
        report.add("soak_cycle", await soak_cycles(api, watch, sizes, n))
        wall = time.perf_counter() - t0
        after = await settled(api, server)
    change = {
        k: round((getattr(after, k) - getattr(before, k)) / max(getattr(before, k), 1), 4)
        for k in ("rss_mib", "fds", "threads")
    }
    report.check(
        "soak",
        {"cycles": n, "concurrency": sizes.soak_concurrency, "cycles_per_s": round(n / wall, 2)}
        | {"before": asdict(before), "after": asdict(after), "change": change},
    )
    if after.job_processes or after.zombies:
        report.problem(f"soak: {after.job_processes} job processes, {after.zombies} zombies left")


# ---------------------------------------------------------------------------- 8: list


async def bench_list(api: Api, server: JupyterServer, sizes: Sizes, report: Report) -> None:
    n = sizes.list_jobs
    print(f"[8] {n} finished jobs into the database, then GET /jobs?limit=50", flush=True)
    base = time.time() - n - 3600  # older than this run's jobs
    report.check("list_fill_s", round(await asyncio.to_thread(fill_jobctl, api.db_url, n, base), 2))
    report.check("list_jobs", n)
    for i in range(sizes.list_gets + 3):  # 3 warm-up requests, not counted
        elapsed, page = await api.call("GET", "/jobs?limit=50")
        if len(page["jobs"]) != 50:
            raise ApiError(f"GET /jobs?limit=50 returned {len(page['jobs'])} jobs")
        if i >= 3:
            report.add("list_first_page", elapsed)


# ---------------------------------------------------------------------------- rows, main


def rows(doc: dict[str, Any], backend: str) -> list[Line]:
    fig, checks, sizes, out = doc["figures"], doc["checks"], doc["sizes"], []
    for case in (c for c in STOP_CASES if c.key in fig):
        what, rung = f"stop → `cancelled` on WS, {case.what}", checks[f"{case.key}_rung_s"] * 1000
        out.append(latency(1, what, backend, fig[case.key], None if rung else 150))
        if rung:
            out[-1].goal = "— (ladder-bound)"
            overhead = fig[case.key]["p50_ms"] - rung
            out[-1].comparison = f"rung at {rung:.0f} ms; p50 overhead {overhead:.0f} ms"
    if "stop_rtt" in fig:
        out.append(latency(2, "`POST /jobs/{id}/stop` round trip", backend, fig["stop_rtt"], 20))
    if "event_to_ws_idle" in fig:
        what = "worker `job.log` → WS client"
        out.append(latency(4, f"{what}, idle", backend, fig["event_to_ws_idle"], 100))
        seen, wanted = checks.get("load_events_per_s"), checks.get("load_events_per_s_target")
        load = f"{sizes['load_jobs']} jobs writing {rate(seen)} of {rate(wanted)} events/s"
        loaded = fig.get("event_to_ws_load")
        out.append(latency(4, f"{what}, under load", backend, loaded, 100, load))
    if "health_during_ingest" in fig:
        health, ingest = fig["health_during_ingest"], checks["ingest"]
        stored, flow = ingest["stored"]["events_per_s"], ingest["delivery"]
        share = (flow["delivered_fraction"] or 0) * 100
        note = (
            f"{sizes['ingest_jobs']} jobs, {sizes['ingest_clients']} WS clients: delivered "
            f"{rate(flow['delivered_events_per_s'])} events/s ({share:.0f} % of the fan-out)"
        )
        if alone := checks.get("ingest_no_clients"):
            h = fig["health_during_ingest_no_clients"]
            note += (
                f"; the same jobs without clients: {rate(alone['stored']['events_per_s'])} "
                f"events/s, /health p50 {ms(h['p50_ms'])}, p99 {ms(h['p99_ms'])}"
            )
        ok = stored >= 20_000 and health["p99_ms"] < 50
        out.append(
            Line(
                6,
                "events/s stored; `GET /health` meanwhile",
                backend,
                f"/health {ms(health['p50_ms'])}",
                f"**{rate(stored)} events/s**; /health p99 {ms(health['p99_ms'])}",
                "≥ 20 000 events/s, /health p99 < 50 ms",
                note,
                verdict(ok),
            )
        )
    if "list_first_page" in fig:
        what = f"`GET /jobs?limit=50` at {rate(checks['list_jobs'])} jobs"
        out.append(latency(8, what, backend, fig["list_first_page"], 20))
    if soak := checks.get("soak"):
        b, a, c = soak["before"], soak["after"], soak["change"]
        names = {"fds": "FDs", "threads": "threads", "job_processes": "job processes"}
        moved = ", ".join(f"{label} {b[k]}→{a[k]}" for k, label in names.items())
        moved += f", zombies {b['zombies']}→{a['zombies']}"
        resources = f"RSS {b['rss_mib']}→{a['rss_mib']} MiB ({c['rss_mib'] * 100:+.1f} %), {moved}"
        ok = all(abs(v) <= 0.05 for v in c.values()) and not a["job_processes"] + a["zombies"]
        cycle, flow = fig["soak_cycle"], f"{soak['cycles_per_s']} cycles/s"
        out.append(
            Line(
                9,
                f"{soak['cycles']} create/start/stop cycles (command jobs)",
                backend,
                f"cycle {ms(cycle['p50_ms'])}",
                f"cycle p99 {ms(cycle['p99_ms'])}; {resources}",
                "flat ± 5 %, nothing left",
                f"{flow}, {soak['concurrency']} in flight",
                verdict(ok),
            )
        )
    return out


Figure = Callable[[Api, JupyterServer, Sizes, Report], Awaitable[None]]
RUN: dict[str, Figure] = {
    "stop": bench_stop,
    "latency": bench_latency,
    "ingest": bench_ingest,
    "soak": bench_soak,
    "list": bench_list,
}


async def run_figures(server: JupyterServer, db_url: str, args: Any, report: Report) -> None:
    """Each figure in turn (one failing is reported, the others still run); then every job
    still active is stopped through the API."""
    api = Api(server, db_url)
    try:
        for name, fn in RUN.items():
            if not args.only or name in args.only:
                t0 = time.perf_counter()
                try:
                    await fn(api, server, args.sizes, report)
                except Exception as exc:
                    report.problem(f"figure {name!r} failed: {type(exc).__name__}: {exc}")
                print(f"    ({name}: {time.perf_counter() - t0:.1f} s)", flush=True)
        await api.stop_all()
    finally:
        for text in api.unexpected[:10]:
            report.problem(f"unexpected answer: {text}")
        api.close()


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server-arg", action="append", default=[], metavar="ARG",
        help="a jupyter server option replacing its default, e.g. --JobCtl.stop_grace=3",
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse(__doc__, Sizes(), SMOKE, FIGURES, argv, options)
    report, home = Report(), Path(tempfile.mkdtemp(prefix="jobctl-server-bench-"))
    db_url = args.db_url or f"sqlite:///{home / 'jobctl.db'}"
    server_options = merge_options(jobctl_options(db_url, **LADDER), args.server_arg)
    server = JupyterServer(home, server_options, name="jobctl")
    print(f"server benchmark on {args.backend}: {asdict(args.sizes)}\n  {server_options}")
    try:
        with recorded(report):
            report.check("server_start_s", round(server.start(), 2))
            asyncio.run(run_figures(server, db_url, args, report))
    finally:
        server.stop()
        if left := kill_pids(job_pids(db_url)):
            report.problem(f"{len(left)} job process(es) outlived the clean-up: {left}")
        errors = [ln for ln in server.tail(10**6).splitlines() if ln.startswith("[E ")]
        report.check("server_log_errors", errors[:10])
        shutil.rmtree(home, ignore_errors=True)
    return finish(report, args, rows, server=server_options)


if __name__ == "__main__":
    sys.exit(main())
