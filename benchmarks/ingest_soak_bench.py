"""Ingest, soak and stop-ladder benchmark against a real ``jupyter server`` subprocess.

Run from the repository root:

    .venv/bin/python benchmarks/ingest_soak_bench.py              # full size (a few minutes)
    .venv/bin/python benchmarks/ingest_soak_bench.py --smoke      # tiny sizes, < 60 s
    .venv/bin/python benchmarks/ingest_soak_bench.py --json /tmp/ingest.json --only ingest
    .venv/bin/python benchmarks/ingest_soak_bench.py \
        --db-url postgresql+psycopg://jobctl@127.0.0.1:5432/bench   # an existing, empty database

Every size has its own option (``--stop-runs``, ``--ingest-seconds``, ``--soak-cycles``...;
see ``--help``); ``--server-arg=--JobCtl.X=Y`` overrides a server option (the stop ladder
defaults below included). Exit status: 0 when nothing looked wrong, 1 when something did
(listed under "problems"), 130 when interrupted (clean-up still runs). Figures:

stop (figures 1 and 2): stop request -> ``cancelled`` on the job's WebSocket for a
   cooperative job (checkpoint every 5 ms), a job blocked in ``time.sleep`` (SIGINT rung)
   and a ``command`` job ignoring SIGINT/SIGTERM (SIGKILL rung), and the ``POST /stop``
   round trip of all of them. Jobs are started in batches of ``--stop-batch`` and, once
   every one printed its ready line, stopped one by one ``--stop-stagger`` apart, so no
   process start-up overlaps a measurement and the machine is not saturated by idle jobs
   (``server_bench.py`` stops one of N jobs all running at once: each running job costs a
   few % of a CPU in polling, so at N = 50 a 2-CPU machine is overloaded).
ingest (figure 6): ``--ingest-jobs`` jobs report events as fast as the store takes them
   (``ingest_jobs.py:flood``) while ``--ingest-clients`` WebSocket clients (in
   ``--client-procs`` separate processes) follow their streams. Events/s stored (from the
   jobs' ``last_seq`` sampled every second), events/s delivered to the clients, and
   ``GET /health`` from a separate prober process over the same window. Every client must
   see each seq at most once and in order; those that catch up within
   ``--catch-up-timeout`` after the stop must get a ``done`` with the job's last seq.
soak (figure 9): ``--soak-cycles`` create/start/stop cycles over HTTP (``--soak-concurrency``
   in flight) after ``--soak-warmup`` cycles, of ``command`` jobs (``sleep``, ended by the
   SIGINT rung) or with ``--soak-kind=training`` cooperative training jobs. The server
   process's RSS, open FDs and threads, its child processes and every process carrying
   the job database in its environment, before and after (psutil).

list (figure 8): ``GET /jobs?limit=50`` after ``--list-jobs`` finished jobs were written
   straight into the database (``common.fill_jobctl``).

The server runs with ``--JobCtl.interrupt_after=0.5 --JobCtl.stop_grace=2
--JobCtl.kill_grace=0.5`` (the default SIGINT delay, a shorter SIGTERM/SIGKILL ladder than
the 3 s + 2 s defaults, so 50 SIGKILL runs fit the time budget; 1.5 s from SIGINT to
SIGTERM still leaves a loaded machine time to unwind); the output says which.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing as mp
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import bench_jobs  # noqa: E402
from common import (  # noqa: E402
    TERMINAL,
    TIMEOUT,
    ApiError,
    CpuMeter,
    Report,
    add_run_options,
    add_server_arg,
    add_size_options,
    exit_on_sigterm,
    fill_jobctl,
    job_pids,
    machine,
    percentile,
    print_table,
    sizes_from,
    token_auth,
    write_json,
)
from server_bench import (  # noqa: E402
    API,
    Api,
    Figure,
    Prober,
    Server,
    Stream,
    StreamClosed,
    is_type,
    run_on_server,
)
from tornado.httpclient import HTTPRequest  # noqa: E402
from tornado.websocket import websocket_connect  # noqa: E402

PROBE_INTERVAL = 0.05  # seconds between two GET /health of the prober
LADDER_ARGS = ("--JobCtl.interrupt_after=0.5", "--JobCtl.stop_grace=2", "--JobCtl.kill_grace=0.5")


# ---------------------------------------------------------------------------- sizes


@dataclass
class Sizes:
    """How big each figure is (the defaults are the full run; SMOKE is the --smoke run)."""

    stop_runs: int = 50
    stop_batch: int = 10
    stop_stagger: float = 0.15
    ingest_jobs: int = 8
    ingest_clients: int = 50
    client_procs: int = 2
    ingest_warmup: float = 2.0
    ingest_seconds: float = 10.0
    ingest_baseline_seconds: float = 5.0  # the same jobs without clients (0: skip)
    ingest_chunk: int = 200
    catch_up_timeout: float = 5.0
    soak_cycles: int = 1000
    soak_warmup: int = 20
    soak_concurrency: int = 8
    soak_kind: str = "command"  # or "training": twice the CPU per cycle (two Pythons start)
    list_jobs: int = 10_000
    list_gets: int = 30


SMOKE = Sizes(
    stop_runs=3,
    stop_batch=3,
    ingest_jobs=2,
    ingest_clients=4,
    client_procs=1,
    ingest_warmup=1.0,
    ingest_seconds=3.0,
    ingest_baseline_seconds=2.0,
    soak_cycles=20,
    soak_warmup=5,
    soak_concurrency=2,
    list_jobs=300,
    list_gets=10,
)


# ---------------------------------------------------------------------------- the server


class BenchServer(Server):
    """``server_bench.Server`` with this script's stop ladder, on any database."""

    def __init__(self, root: Path, db_url: str | None, extra_args: Sequence[str]) -> None:
        # an option given on the command line replaces the ladder default (traitlets refuses
        # the same option twice)
        given = {arg.split("=", 1)[0] for arg in extra_args}
        ladder = [arg for arg in LADDER_ARGS if arg.split("=", 1)[0] not in given]
        super().__init__(root, [*ladder, *extra_args])
        if db_url:
            self.db_url = db_url

    def option(self, name: str) -> str | None:
        """The value the server gets for ``--name`` (the last one given wins)."""
        found = [a.split("=", 1)[1] for a in self.argv() if a.startswith(f"{name}=")]
        return found[-1] if found else None


# ---------------------------------------------------------------------------- figure 1: stop


@dataclass
class StopCase:
    key: str
    label: str
    kind: str
    spec: dict[str, Any]
    ladder_option: tuple[str, ...]  # server options whose sum is the rung's delay
    expect: dict[str, Any]  # fields the finished job row must carry


def stop_cases() -> list[StopCase]:
    cwd = str(BENCH_DIR)
    cooperative = {"target": "bench_jobs:cooperative", "config": {"sleep": 0.005}, "cwd": cwd}
    sleeper = {"target": "bench_jobs:sleeper", "config": {"seconds": 600}, "cwd": cwd}
    stubborn = {"argv": [sys.executable, "-c", bench_jobs.STUBBORN_SCRIPT]}
    return [
        StopCase(
            "stop_coop_to_cancelled_ws",
            "1  stop -> cancelled on WS, cooperative",
            "training",
            cooperative,
            (),
            {"exit_code": 0},
        ),
        StopCase(
            "stop_sleep_to_cancelled_ws",
            "1  stop -> cancelled on WS, blocked in time.sleep",
            "training",
            sleeper,
            ("--JobCtl.interrupt_after",),
            {"exit_code": 130},
        ),
        StopCase(
            "stop_stubborn_to_cancelled_ws",
            "1  stop -> cancelled on WS, ignores SIGINT/SIGTERM",
            "command",
            stubborn,
            ("--JobCtl.stop_grace", "--JobCtl.kill_grace"),
            {"signal": "SIGKILL"},
        ),
    ]


def is_ready(msg: dict[str, Any]) -> bool:
    return (
        msg.get("type") == "event"
        and msg.get("event") == "log"
        and msg.get("data", {}).get("line") == bench_jobs.READY_LINE
    )


def is_cancelled_or_done(msg: dict[str, Any]) -> bool:
    if msg.get("type") == "done":
        return True
    return msg.get("event") == "status" and msg.get("data", {}).get("status") == "cancelled"


async def job_story(api: Api, job_id: str, last: int = 8) -> str:
    """Status, reason and the last status changes / jobctl / stderr lines of a job."""
    job = await api.get(job_id)
    _, page = await api.call("GET", f"/jobs/{job_id}/events?after=0&limit=1000")
    lines = []
    for e in page["events"]:
        data = e["data"]
        if e["type"] == "status":
            lines.append(f"#{e['seq']} {data.get('from')}->{data.get('status')}")
        elif e["type"] == "log" and data.get("stream") in ("jobctl", "stderr"):
            lines.append(f"#{e['seq']} {data.get('line', '')[:160]}")
    return f"job {job_id} {job['status']} ({job.get('reason')}): " + " | ".join(lines[-last:])


async def armed_job(
    api: Api, server: Server, case: StopCase, created: list[str]
) -> tuple[str, Stream]:
    """Create a job, watch its stream from seq 0, start it, wait for its ready line."""
    job = await api.create(case.kind, case.spec, start=False)
    created.append(job["id"])
    stream = await Stream.open(server, job["id"])
    try:
        await stream.wait_for(is_type("snapshot"))
        await api.call("POST", f"/jobs/{job['id']}/start")
        api.started.add(job["id"])
        await stream.wait_for(is_ready)
    except (StreamClosed, TimeoutError) as exc:
        await stream.close()
        raise ApiError(f"{exc}; {await job_story(api, job['id'])}") from exc
    except BaseException:
        await stream.close()
        raise
    return job["id"], stream


@dataclass
class StopRun:
    rtt: float
    to_cancelled: float
    final: str
    row: dict[str, Any]


async def stop_watched(api: Api, job_id: str, stream: Stream, delay: float) -> StopRun:
    """After ``delay``: POST stop, then the time until ``cancelled`` is received on the WS."""
    await asyncio.sleep(delay)
    mark = len(stream.frames)
    t0 = time.perf_counter()
    rtt, job = await api.call("POST", f"/jobs/{job_id}/stop", expect=(202, 409))
    try:
        if job.get("status") in TERMINAL or "error" in job:
            raise ApiError(f"the stop answered {job}")
        cancelled = await stream.wait_for(is_cancelled_or_done, start=mark)
        done = await stream.wait_for(is_type("done"), start=mark)
    except (StreamClosed, TimeoutError, ApiError) as exc:
        raise ApiError(f"{exc}; {await job_story(api, job_id)}") from exc
    return StopRun(rtt, cancelled.t - t0, done.msg["status"], await api.get(job_id))


def failures(results: list[Any], what: str, report: Report) -> list[Any]:
    """The results that are not exceptions; each exception becomes a problem."""
    for exc in (r for r in results if isinstance(r, BaseException)):
        if not isinstance(exc, Exception):
            raise exc
        report.problem(f"{what}: {type(exc).__name__}: {exc}")
    return [r for r in results if not isinstance(r, BaseException)]


async def stop_batch(
    api: Api, server: Server, case: StopCase, sizes: Sizes, n: int, report: Report
) -> list[StopRun]:
    """Arm n jobs, then stop them ``stop_stagger`` apart; a job that misbehaves is reported."""
    armed: list[tuple[str, Stream]] = []
    created: list[str] = []
    try:
        arming = [armed_job(api, server, case, created) for _ in range(n)]
        armed = failures(await asyncio.gather(*arming, return_exceptions=True), case.key, report)
        stops = [stop_watched(api, i, s, k * sizes.stop_stagger) for k, (i, s) in enumerate(armed)]
        return failures(await asyncio.gather(*stops, return_exceptions=True), case.key, report)
    finally:
        for _, stream in armed:
            await stream.close()
        await api.settle(created)


def check_stop_runs(case: StopCase, runs: list[StopRun], report: Report) -> None:
    finals = Counter(r.final for r in runs)
    report.check(f"{case.key}_final_status", dict(finals))
    if set(finals) != {"cancelled"}:
        report.problem(f"{case.key}: jobs ended {dict(finals)}, expected all 'cancelled'")
    wrong = [r.row for r in runs if any(r.row.get(k) != v for k, v in case.expect.items())]
    if wrong:
        got = Counter(f"exit_code={j.get('exit_code')} signal={j.get('signal')}" for j in wrong)
        report.problem(f"{case.key}: {len(wrong)} job(s) ended through another rung: {got}")


async def bench_stop(api: Api, server: BenchServer, sizes: Sizes, report: Report) -> None:
    rtts: list[float] = []
    for case in stop_cases():
        delay = sum(float(server.option(name) or 0) for name in case.ladder_option)
        print(f"[1] {case.label}: {sizes.stop_runs} runs (ladder {delay:g} s) ...", flush=True)
        runs: list[StopRun] = []
        for done in range(0, sizes.stop_runs, sizes.stop_batch):
            n = min(sizes.stop_batch, sizes.stop_runs - done)
            runs += await stop_batch(api, server, case, sizes, n, report)
        report.add(case.key, case.label, [r.to_cancelled for r in runs])
        report.check(f"{case.key}_ladder_s", delay)
        check_stop_runs(case, runs, report)
        rtts += [r.rtt for r in runs]
    report.add("stop_rtt", f"2  POST /stop round trip (<= {sizes.stop_batch} running)", rtts)


# ---------------------------------------------------------------------------- figure 6: ingest


@dataclass
class Follower:
    """One WebSocket client following a job's stream (lives in a client process)."""

    job_id: str
    count: int = 0
    last: int = 0
    gaps: int = 0
    duplicates: int = 0
    done_status: str | None = None
    done_last: int | None = None
    close_code: int | None = None
    error: str | None = None


async def follow(port: int, token: str, f: Follower, connected: asyncio.Event) -> None:
    url = f"ws://127.0.0.1:{port}{API}/jobs/{f.job_id}/stream?after=0"
    req = HTTPRequest(
        url,
        headers=token_auth(token),
        connect_timeout=TIMEOUT,
        request_timeout=TIMEOUT,
    )
    try:
        conn = await websocket_connect(req, max_message_size=64 * 1024 * 1024)
    except Exception as exc:
        f.error = f"connect: {exc!r}"
        connected.set()
        return
    while (raw := await conn.read_message()) is not None:
        msg = json.loads(raw)
        kind = msg["type"]
        if kind == "event":
            seq = msg["seq"]
            f.count += 1
            if seq <= f.last:
                f.duplicates += 1
            elif seq != f.last + 1:
                f.gaps += 1
            f.last = max(f.last, seq)
        elif kind == "snapshot":
            connected.set()
        elif kind == "done":
            f.done_status, f.done_last = msg["status"], msg["last_seq"]
    f.close_code = conn.close_code
    connected.set()


def follower_state(followers: list[Follower]) -> dict[str, Any]:
    return {
        "t": time.time(),
        "cpu_s": time.process_time(),
        "count": sum(f.count for f in followers),
        "clients": [asdict(f) for f in followers],
    }


async def client_loop(port: int, token: str, job_ids: list[str], pipe: Any) -> None:
    followers = [Follower(j) for j in job_ids]
    events = [asyncio.Event() for _ in followers]
    tasks = [asyncio.ensure_future(follow(port, token, f, e)) for f, e in zip(followers, events)]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), TIMEOUT)
    loop = asyncio.get_running_loop()
    pipe.send(follower_state(followers))  # connected: every snapshot is in
    while True:
        command, arg = await loop.run_in_executor(None, pipe.recv)
        if command == "finish":  # wait (arg seconds at most) for every stream to end
            await asyncio.wait(tasks, timeout=arg)
            for task in tasks:
                task.cancel()
            pipe.send(follower_state(followers))
            return
        pipe.send(follower_state(followers))


def client_process(port: int, token: str, job_ids: list[str], pipe: Any) -> None:
    """Runs in its own process: follows ``job_ids`` streams, answers the coordinator's pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator ends us
    asyncio.run(client_loop(port, token, job_ids, pipe))


class ClientPool:
    """The WebSocket clients, spread over separate processes so that they do not share a GIL
    with the coordinator (which samples ``last_seq`` and runs the clock)."""

    def __init__(self, server: Server, job_ids: list[str], clients: int, procs: int) -> None:
        ctx = mp.get_context("spawn")
        assigned = [job_ids[i % len(job_ids)] for i in range(clients)]
        self.pipes: list[Any] = []
        self.procs: list[Any] = []
        for p in range(procs):
            mine = assigned[p::procs]
            if not mine:
                continue
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=client_process, args=(server.port, server.token, mine, theirs), daemon=True
            )
            self.pipes.append(ours)
            self.procs.append(proc)

    async def _recv_all(self, timeout: float) -> list[dict[str, Any]]:
        async def recv(pipe: Any) -> dict[str, Any]:
            if not await asyncio.to_thread(pipe.poll, timeout):
                raise TimeoutError("a WebSocket client process did not answer")
            return pipe.recv()

        return list(await asyncio.gather(*(recv(p) for p in self.pipes)))

    async def start(self) -> list[dict[str, Any]]:
        for proc in self.procs:
            proc.start()
        return await self._recv_all(TIMEOUT)

    async def mark(self) -> list[dict[str, Any]]:
        for pipe in self.pipes:
            pipe.send(("mark", None))
        return await self._recv_all(TIMEOUT)

    async def finish(self, timeout: float) -> list[dict[str, Any]]:
        for pipe in self.pipes:
            pipe.send(("finish", timeout))
        return await self._recv_all(timeout + TIMEOUT)

    def close(self) -> None:
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def merged(states: list[dict[str, Any]]) -> tuple[float, list[dict[str, Any]]]:
    """(CPU seconds used by the client processes so far, every client's state)."""
    return sum(s["cpu_s"] for s in states), [c for s in states for c in s["clients"]]


async def seq_sample(api: Api, ids: Sequence[str]) -> tuple[float, dict[str, int]]:
    rows = await asyncio.gather(*(api.get(i) for i in ids))
    return time.perf_counter(), {j["id"]: j["last_seq"] for j in rows}


def stored_rates(samples: list[tuple[float, dict[str, int]]]) -> dict[str, float]:
    """Average events/s over the window, and the slowest / fastest one-sample interval."""
    (t0, s0), (t1, s1) = samples[0], samples[-1]
    steps = [
        (sum(b.values()) - sum(a.values())) / (tb - ta)
        for (ta, a), (tb, b) in itertools.pairwise(samples)
    ]
    per_job = [(s1[j] - s0[j]) / (t1 - t0) for j in s0]
    return {
        "events_per_s": (sum(s1.values()) - sum(s0.values())) / (t1 - t0),
        "min_interval_events_per_s": min(steps),
        "max_interval_events_per_s": max(steps),
        "slowest_job_events_per_s": min(per_job),
        "fastest_job_events_per_s": max(per_job),
        "window_s": t1 - t0,
    }


def delivery(
    before: list[dict[str, Any]], after: list[dict[str, Any]], s0: dict, s1: dict, wall: float
) -> dict[str, float]:
    """Events/s the clients received, against what their jobs stored meanwhile (fan-out)."""
    got = sum(b["count"] - a["count"] for a, b in zip(before, after))
    owed = sum(s1[c["job_id"]] - s0[c["job_id"]] for c in after)
    lags = [s1[c["job_id"]] - c["last"] for c in after]
    return {
        "delivered_events_per_s": got / wall,
        "fanout_events_per_s": owed / wall,
        "delivered_fraction": got / owed if owed else float("nan"),
        "lag_events_p50": percentile(lags, 50),
        "lag_events_max": max(lags, default=math.nan),
    }


def check_followers(clients: list[dict[str, Any]], final: dict[str, int], report: Report) -> None:
    """After the jobs ended: every seq at most once and in order, ``done`` right if it came.

    A client still behind when the catch-up time is up is not an error (the server can be
    slower than the fan-out); how far behind is reported.
    """
    gaps = sum(c["gaps"] for c in clients)
    dups = sum(c["duplicates"] for c in clients)
    wrong_done = [c for c in clients if c["done_last"] not in (None, final[c["job_id"]])]
    behind = [final[c["job_id"]] - c["last"] for c in clients if c["done_last"] is None]
    report.check("ingest_clients_gaps", gaps)
    report.check("ingest_clients_duplicates", dups)
    report.check("ingest_clients_done", len(clients) - len(behind))
    report.check("ingest_clients_behind_at_end", len(behind))
    report.check("ingest_events_behind_at_end", sum(behind))
    report.check("ingest_close_codes", dict(Counter(str(c["close_code"]) for c in clients)))
    errors = [c["error"] for c in clients if c["error"]]
    if gaps or dups or errors or wrong_done:
        report.problem(
            f"ingest streams: {gaps} gaps, {dups} duplicates, {len(wrong_done)} wrong done "
            f"frame(s), errors {errors[:3]}"
        )


@dataclass
class Window:
    """What one measured ingest window saw."""

    rates: dict[str, float]
    flow: dict[str, float]
    health: list[float]  # seconds
    cpu: dict[str, float]


def rounded(values: dict[str, float], digits: int = 1) -> dict[str, float]:
    return {k: round(v, digits) for k, v in values.items()}


async def ingest_window(
    api: Api, server: Server, pool: ClientPool, ids: list[str], seconds: float, report: Report
) -> Window:
    """last_seq every second, the clients' counts at both ends, /health all along."""
    prober = Prober(server, PROBE_INTERVAL)
    await prober.start()
    cpu = CpuMeter(server)
    try:
        samples = [await seq_sample(api, ids)]
        cpu0, before = merged(await pool.mark())
        t_end = samples[0][0] + seconds
        while samples[-1][0] < t_end:
            await asyncio.sleep(min(1.0, max(0.0, t_end - time.perf_counter())))
            samples.append(await seq_sample(api, ids))
        cpu1, after = merged(await pool.mark())
    finally:
        health, errors = await prober.finish()
    if errors:
        report.problem(f"/health prober errors during ingest: {Counter(errors).most_common(3)}")
    rates = stored_rates(samples)
    flow = delivery(before, after, samples[0][1], samples[-1][1], rates["window_s"])
    usage = {**cpu.result(), "ws_clients_cpu_s": round(cpu1 - cpu0, 2)}
    print(
        f"[6] stored {rates['events_per_s']:.0f} events/s, delivered "
        f"{flow['delivered_events_per_s']:.0f} events/s to {len(after)} clients, /health p50 "
        f"{percentile(health, 50) * 1000:.1f} ms, p99 {percentile(health, 99) * 1000:.1f} ms",
        flush=True,
    )
    return Window(rates, flow, health, usage)


async def ingest_round(
    api: Api, server: Server, sizes: Sizes, clients: int, seconds: float, report: Report
) -> Window:
    """``ingest_jobs`` flood jobs followed by ``clients`` WebSocket clients, measured."""
    spec = {"target": "ingest_jobs:flood", "config": {"chunk": sizes.ingest_chunk}}
    spec["cwd"] = str(BENCH_DIR)
    ids = [
        (await api.create("training", spec, start=False))["id"] for _ in range(sizes.ingest_jobs)
    ]
    procs = sizes.client_procs if clients else 0
    print(f"[6] {len(ids)} flood jobs, {clients} WS clients in {procs} process(es) ...", flush=True)
    pool = ClientPool(server, ids, clients, procs)
    try:
        await pool.start()
        await asyncio.gather(*(api.call("POST", f"/jobs/{i}/start") for i in ids))
        api.started.update(ids)
        await api.wait_jobs(ids, lambda j: j["last_seq"] > 0 or j["status"] in TERMINAL, "writing")
        await asyncio.sleep(sizes.ingest_warmup)  # the rate is sustained, not the ramp-up
        return await ingest_window(api, server, pool, ids, seconds, report)
    finally:
        await api.settle(ids)
        if clients:
            final = {i: (await api.get(i))["last_seq"] for i in ids}
            report.check("ingest_events_stored_total", sum(final.values()))
            t0 = time.perf_counter()
            with contextlib.suppress(TimeoutError):
                _, followers = merged(await pool.finish(sizes.catch_up_timeout))
                report.check("ingest_catch_up_s", round(time.perf_counter() - t0, 2))
                check_followers(followers, final, report)
        pool.close()


async def bench_ingest(api: Api, server: BenchServer, sizes: Sizes, report: Report) -> None:
    k, c = sizes.ingest_jobs, sizes.ingest_clients
    if sizes.ingest_baseline_seconds > 0:
        base = await ingest_round(api, server, sizes, 0, sizes.ingest_baseline_seconds, report)
        label = f"6  GET /health, {k} jobs flooding, no client"
        report.add("health_during_ingest_no_clients", label, base.health)
        report.check("ingest_stored_no_clients", rounded(base.rates))
        report.check("ingest_cpu_no_clients", base.cpu)
    main = await ingest_round(api, server, sizes, c, sizes.ingest_seconds, report)
    report.add(
        "health_during_ingest", f"6  GET /health during ingest ({k} jobs, {c} WS)", main.health
    )
    report.check("ingest_stored", rounded(main.rates))
    report.check("ingest_delivery", rounded(main.flow, 3))
    report.check("ingest_cpu", main.cpu)


# ---------------------------------------------------------------------------- figure 9: soak


@dataclass
class ServerStats:
    rss_mib: float
    fds: int
    threads: int
    children: int
    zombies: int
    job_processes: int

    @classmethod
    def of(cls, server: Server) -> ServerStats:
        import psutil

        assert server.proc is not None
        proc = psutil.Process(server.proc.pid)
        kids = proc.children(recursive=True)
        zombies = 0
        for kid in kids:
            with contextlib.suppress(psutil.Error):
                zombies += kid.status() == psutil.STATUS_ZOMBIE
        return cls(
            rss_mib=round(proc.memory_info().rss / 2**20, 1),
            fds=proc.num_fds(),
            threads=proc.num_threads(),
            children=len(kids),
            zombies=zombies,
            job_processes=len(job_pids(server.db_url)),
        )


def soak_spec(kind: str) -> dict[str, Any]:
    if kind == "command":
        return {"argv": ["sleep", "600"]}
    return {"target": "server_jobs:cooperative", "config": {}, "cwd": str(BENCH_DIR)}


class StatusWatch:
    """Every job's latest status from one ``WS /stream`` (pushed, so a soak of many cycles
    does not load the server with status polls); a GET now and then as a safety net."""

    def __init__(self, api: Api, server: Server) -> None:
        self.api = api
        self.server = server
        self.status: dict[str, str] = {}
        self.changed = asyncio.Event()
        self.conn: Any = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        req = HTTPRequest(
            f"{self.server.ws_base}/stream", headers=self.server.auth, request_timeout=TIMEOUT
        )
        self.conn = await websocket_connect(req)
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while (raw := await self.conn.read_message()) is not None:
            msg = json.loads(raw)
            if msg.get("type") == "job":
                self.status[msg["job"]["id"]] = msg["job"]["status"]
                self.changed.set()
        self.changed.set()

    async def wait(self, job_id: str, wanted: set[str], timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        next_get = time.monotonic() + 2.0
        while (status := self.status.get(job_id)) not in wanted:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"job {job_id} still {status!r} after {timeout:.0f} s")
            if now > next_get or self.task is None or self.task.done():
                self.status[job_id] = (await self.api.get(job_id))["status"]
                next_get = now + 2.0
                continue
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.5)
        return status

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.task, 10)


async def soak_cycle(api: Api, watch: StatusWatch, kind: str) -> float:
    """create+start, wait running, stop, wait terminal; returns the cycle's seconds."""
    t0 = time.perf_counter()
    job = await api.create(kind, soak_spec(kind), start=True)
    await watch.wait(job["id"], {"running", "stopping", *TERMINAL})
    await api.call("POST", f"/jobs/{job['id']}/stop", expect=(202, 409))
    await watch.wait(job["id"], set(TERMINAL))
    return time.perf_counter() - t0


async def soak_cycles(
    api: Api,
    watch: StatusWatch,
    sizes: Sizes,
    n: int,
    progress: Callable[[int], Awaitable[None]] | None = None,
) -> list[float]:
    times: list[float] = []
    todo = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            times.append(await soak_cycle(api, watch, sizes.soak_kind))
            if progress is not None and len(times) % 100 == 0:
                await progress(len(times))

    await asyncio.gather(*(worker() for _ in range(sizes.soak_concurrency)))
    return times


async def settled_stats(server: Server, timeout: float = 30.0) -> tuple[ServerStats, float]:
    """Stats once no job process is left (or after ``timeout``); also the seconds it took."""
    t0 = time.perf_counter()
    while True:
        stats = ServerStats.of(server)
        waited = time.perf_counter() - t0
        if (stats.job_processes == 0 and stats.zombies == 0) or waited > timeout:
            return stats, waited
        await asyncio.sleep(0.1)


async def saturate_pools(api: Api, n: int = 64) -> None:
    """Many requests at once, so the server's thread pools reach their size in the warm-up."""
    await asyncio.gather(*(api.call("GET", "/jobs?limit=5") for _ in range(n)))


def relative_change(before: ServerStats, after: ServerStats) -> dict[str, float]:
    """Relative change of each server resource over the soak (the goal: within 5 %)."""
    return {
        name: (getattr(after, name) - getattr(before, name)) / max(getattr(before, name), 1)
        for name in ("rss_mib", "fds", "threads")
    }


async def bench_soak(api: Api, server: BenchServer, sizes: Sizes, report: Report) -> None:
    kind, n = sizes.soak_kind, sizes.soak_cycles
    watch = StatusWatch(api, server)
    await watch.open()
    try:
        print(f"[9] soak warm-up: {sizes.soak_warmup} {kind} cycles ...", flush=True)
        await soak_cycles(api, watch, sizes, sizes.soak_warmup)
        await saturate_pools(api)
        before, _ = await settled_stats(server)
        print(f"[9] before: {before}", flush=True)
        series = [{"cycles": 0, **asdict(before)}]

        async def progress(done: int) -> None:
            series.append({"cycles": done, **asdict(ServerStats.of(server))})
            print(f"[9] {done}/{n} cycles: {series[-1]}", flush=True)

        t0 = time.perf_counter()
        times = await soak_cycles(api, watch, sizes, n, progress)
        wall = time.perf_counter() - t0
        at_end = ServerStats.of(server)
        await saturate_pools(api)
        after, waited = await settled_stats(server)
    finally:
        await watch.close()
    print(f"[9] after:  {after} (settled in {waited:.1f} s)", flush=True)
    label = f"9  create/start/stop cycle ({kind}, x{sizes.soak_concurrency})"
    report.add("soak_cycle", label, times)
    report.check(
        "soak",
        {
            "cycles": n,
            "kind": kind,
            "concurrency": sizes.soak_concurrency,
            "cycles_per_s": round(n / wall, 2),
            "before": asdict(before),
            "at_last_cycle": asdict(at_end),
            "after": asdict(after),
            "change": {k: round(v, 4) for k, v in relative_change(before, after).items()},
            "settle_s": round(waited, 2),
            "series": series,
        },
    )
    if after.job_processes or after.zombies:
        report.problem(
            f"soak: {after.job_processes} job process(es) and {after.zombies} zombie(s) left"
        )


# ---------------------------------------------------------------------------- figure 8: list


async def bench_list(api: Api, server: BenchServer, sizes: Sizes, report: Report) -> None:
    """``GET /jobs?limit=50`` after ``list_jobs`` finished jobs were written straight into
    the database (as ``scheduler_compare.py`` does: the API would take minutes)."""
    n = sizes.list_jobs
    print(f"[8] {n} finished jobs into the database, then GET /jobs?limit=50 ...", flush=True)
    base = time.time() - n - 3600  # older than this run's jobs: they stay the newest
    report.check(
        "list_fill_s", round(await asyncio.to_thread(fill_jobctl, server.db_url, n, base), 2)
    )
    samples = []
    for i in range(sizes.list_gets + 3):  # 3 warm-up requests, not counted
        elapsed, page = await api.call("GET", "/jobs?limit=50")
        if len(page["jobs"]) != 50:
            raise ApiError(f"GET /jobs?limit=50 returned {len(page['jobs'])} jobs")
        if i >= 3:
            samples.append(elapsed)
    report.add("list_first_page", f"8  GET /jobs?limit=50 (>= {n} jobs)", samples)


# ---------------------------------------------------------------------------- main


FIGURES: list[tuple[str, Figure]] = [
    ("stop", bench_stop),
    ("ingest", bench_ingest),
    ("soak", bench_soak),
    ("list", bench_list),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_run_options(p, "comma-separated figures: stop,ingest,soak,list")
    p.add_argument("--db-url", help="an existing empty database (default: SQLite in a temp dir)")
    add_server_arg(p, "--JobCtl.stop_grace=3")
    add_size_options(p, Sizes())
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sizes = sizes_from(args, Sizes(), SMOKE)
    if sizes.soak_kind not in ("training", "command"):
        raise SystemExit("--soak-kind must be training or command")
    info = machine()
    root = Path(tempfile.mkdtemp(prefix="jobctl-ingest-bench-"))
    server = BenchServer(root, args.db_url, args.server_arg)
    backend = server.db_url.split(":", 1)[0].split("+", 1)[0]
    ladder = [a for a in server.argv() if a.startswith("--JobCtl.")]
    print(f"jupyter_jobctl ingest/soak/stop benchmark ({'smoke' if args.smoke else 'full'} size)")
    print(f"backend: {backend}; server options: {ladder}")
    print(f"sizes:   {asdict(sizes)}", flush=True)
    report = Report()
    run = run_on_server(server, sizes, args, report, FIGURES, seconds_checks=True)
    print_table(report)
    if args.json:
        doc = {"machine": info, "sizes": asdict(sizes), "backend": backend, "server": ladder}
        write_json(args.json, {**doc, **report.json_doc()})
    return run.exit_status()


if __name__ == "__main__":
    sys.exit(main())
