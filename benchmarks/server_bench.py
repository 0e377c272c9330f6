"""Server benchmark: the jobctl HTTP/WebSocket API of a real ``jupyter server`` subprocess.

Run from the repository root:

    .venv/bin/python benchmarks/server_bench.py                # full size (several minutes)
    .venv/bin/python benchmarks/server_bench.py --smoke        # tiny sizes, < 60 s
    .venv/bin/python benchmarks/server_bench.py --json /tmp/server_bench.json [--keep]
    .venv/bin/python benchmarks/server_bench.py --only replay,list --list-jobs 2000 \
        --server-arg=--JobCtl.max_concurrent_replays=16     # one size or server option changed

Every size has its own option (``--stop-jobs``, ``--replay-clients``, ...; see ``--help``).
Exit status: 0 when nothing looked wrong, 1 when something did (listed under "problems"),
130 when interrupted (clean-up still runs). Job targets live in ``server_jobs.py``.

It starts ``python -m jupyter_server`` with the extension on a free port of 127.0.0.1, in a
fresh temporary directory (SQLite database, runtime/data/config dirs), and measures:

1. ``POST /jobs/{id}/stop`` round trip over N running cooperative jobs;
2. stop request -> ``stopping`` / ``cancelled`` status event seen on the job's WebSocket;
3. worker ``job.log`` call -> frame received by a WebSocket client, idle and while other
   jobs write events fast;
4. ``/health`` latency (from a separate prober process) while many clients replay a large
   job from ``after=0``; replay time per client; gaps and duplicates by seq;
5. ``GET /jobs`` first page latency with many jobs in the database.

Every figure is a distribution (p50/p95/p99/max and the number of samples). Nothing sleeps
a fixed time to let things settle: the script polls until a condition holds, with a
generous timeout. Whatever happens, every job still active is stopped through the API and
waited for, the server's process group is killed, and any process still carrying the
benchmark database in its environment is SIGKILLed (and reported).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import itertools
import json
import multiprocessing as mp
import re
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common import (
    ACTIVE,
    API,
    TERMINAL,
    TIMEOUT,
    ApiError,
    CpuMeter,
    JupyterServer,
    Report,
    Run,
    add_run_options,
    add_server_arg,
    add_size_options,
    exit_on_sigterm,
    job_pids,
    keep_or_remove,
    kill_pids,
    loadavg,
    machine,
    print_table,
    recorded,
    sizes_from,
    write_json,
)
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

BENCH_DIR = Path(__file__).resolve().parent
POLL = 0.05  # seconds between looks at a job's status while waiting for a condition
TICK_RE = re.compile(r"^tick \d+ t=(\d+\.\d+)$")


# ---------------------------------------------------------------------------- sizes


@dataclass
class Sizes:
    """How big each figure is (the defaults are the full run; SMOKE is the --smoke run)."""

    stop_jobs: int = 30
    tick_seconds: float = 10.0
    tick_rate: float = 20.0
    load_jobs: int = 8
    load_rate: float = 1000.0  # log lines/s per load job
    replay_events: int = 20_000
    replay_clients: int = 50
    probe_interval: float = 0.05
    idle_probes: int = 100
    list_jobs: int = 10_000
    create_concurrency: int = 8
    list_gets: int = 30


SMOKE = Sizes(
    stop_jobs=4,
    tick_seconds=2.0,
    load_jobs=2,
    load_rate=500.0,
    replay_events=2_000,
    replay_clients=5,
    idle_probes=20,
    list_jobs=300,
    list_gets=10,
)


# ---------------------------------------------------------------------------- the server


def http_json(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: Any = None,
    timeout: float = 30.0,
) -> tuple[int, Any]:
    """Blocking JSON request (startup and clean-up, which must work without an event loop)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw) if raw else None
        except ValueError:
            return exc.code, raw.decode(errors="replace")


class Server(JupyterServer):
    """A ``jupyter server`` subprocess with the extension, in its own process group."""

    def __init__(self, root: Path, extra_args: Sequence[str] = ()) -> None:
        super().__init__(root, root, f"{API}/health", extra_args)
        db_args = [a.split("=", 1)[1] for a in self.extra_args if a.startswith("--JobCtl.db_url=")]
        self.db_url = db_args[-1] if db_args else f"sqlite:///{root}/jobctl.db"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}{API}"

    def options(self) -> list[str]:
        return [
            "--ServerApp.jpserver_extensions={'jupyter_jobctl': True}",
            f"--JobCtl.db_url={self.db_url}", "--JobCtl.interrupt_after=0.5",
            "--JobCtl.stop_grace=3", "--JobCtl.kill_grace=2",
        ]  # fmt: skip


# ---------------------------------------------------------------------------- HTTP client


class Api:
    """Async JSON client of the jobctl API; records every unexpected answer."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.client = AsyncHTTPClient(force_instance=True, max_clients=256)
        self.unexpected: list[str] = []
        self.started: set[str] = set()

    def close(self) -> None:
        self.client.close()

    async def call(
        self, method: str, path: str, body: Any = None, expect: Iterable[int] = (200,)
    ) -> tuple[float, Any]:
        """One request; returns (seconds, decoded body). Raises ApiError on another status."""
        payload = json.dumps(body) if body is not None else ("" if method == "POST" else None)
        req = HTTPRequest(
            self.server.base + path,
            method=method,
            headers={**self.server.auth, "Content-Type": "application/json"},
            body=payload,
            connect_timeout=TIMEOUT,
            request_timeout=TIMEOUT,
        )
        t0 = time.perf_counter()
        resp = await self.client.fetch(req, raise_error=False)
        elapsed = time.perf_counter() - t0
        if resp.code not in tuple(expect):
            text = (resp.body or b"").decode(errors="replace")[:300]
            msg = f"{method} {path} -> {resp.code} {text or resp.error}"
            self.unexpected.append(msg)
            raise ApiError(msg)
        return elapsed, json.loads(resp.body) if resp.body else None

    async def create(self, kind: str, spec: dict[str, Any], *, start: bool) -> dict[str, Any]:
        _, job = await self.call(
            "POST", "/jobs", {"kind": kind, "spec": spec, "start": start}, expect=(201,)
        )
        if start:
            self.started.add(job["id"])
        return job

    async def training(self, target: str, config: dict[str, Any], *, start: bool) -> dict[str, Any]:
        spec = {"target": f"server_jobs:{target}", "config": config, "cwd": str(BENCH_DIR)}
        return await self.create("training", spec, start=start)

    async def get(self, job_id: str) -> dict[str, Any]:
        return (await self.call("GET", f"/jobs/{job_id}"))[1]

    async def wait_jobs(
        self,
        ids: Sequence[str],
        done: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = TIMEOUT,
        poll: float = 0.25,
    ) -> dict[str, dict[str, Any]]:
        """Poll the jobs until ``done(job)`` holds for every one; returns their last rows."""
        rows: dict[str, dict[str, Any]] = {}
        waiting = list(ids)
        deadline = time.monotonic() + timeout
        while True:
            got = await asyncio.gather(*(self.get(i) for i in waiting))
            rows.update({j["id"]: j for j in got})
            waiting = [j["id"] for j in got if not done(j)]
            if not waiting:
                return rows
            if time.monotonic() > deadline:
                states = Counter(rows[i]["status"] for i in waiting)
                raise TimeoutError(
                    f"{len(waiting)} job(s) not {what} after {timeout:.0f} s: {states}"
                )
            await asyncio.sleep(poll)

    async def settle(self, ids: Iterable[str]) -> None:
        """Stop whichever of these jobs is still active and wait until all are terminal."""
        ids = list(ids)
        if not ids:
            return
        rows = await asyncio.gather(*(self.get(i) for i in ids))
        live = [j["id"] for j in rows if j["status"] not in TERMINAL]
        await asyncio.gather(
            *(self.call("POST", f"/jobs/{i}/stop", expect=(202, 409)) for i in live)
        )
        await self.wait_jobs(ids, lambda j: j["status"] in TERMINAL, "terminal", timeout=60)


# ---------------------------------------------------------------------------- WebSocket client


@dataclass
class Frame:
    t: float  # perf_counter at receipt
    wall: float  # time.time() at receipt
    msg: dict[str, Any]


class StreamClosed(Exception):
    pass


class Stream:
    """A job stream read by a background task; frames are stamped on receipt."""

    def __init__(self, conn: WebSocketClientConnection, job_id: str) -> None:
        self.conn = conn
        self.job_id = job_id
        self.frames: list[Frame] = []
        self.closed = False
        self.close_code: int | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, server: Server, job_id: str, after: int = 0) -> Stream:
        conn = await ws_connect(server, job_id, after)
        return cls(conn, job_id)

    async def _read(self) -> None:
        while True:
            raw = await self.conn.read_message()
            t, wall = time.perf_counter(), time.time()
            if raw is None:
                self.closed, self.close_code = True, self.conn.close_code
                self._changed.set()
                return
            self.frames.append(Frame(t, wall, json.loads(raw)))
            self._changed.set()

    async def wait_for(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT, start: int = 0
    ) -> Frame:
        """The first frame from index ``start`` on that matches ``pred`` (waits for it)."""
        deadline = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.frames):
                if pred(self.frames[i].msg):
                    return self.frames[i]
                i += 1
            if self.closed:
                raise StreamClosed(f"stream {self.job_id} closed ({self.close_code}) early")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"stream {self.job_id}: no matching frame in {timeout:.0f} s")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def close(self) -> None:
        self.conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 10)


async def ws_connect(server: Server, job_id: str, after: int) -> WebSocketClientConnection:
    req = HTTPRequest(
        f"{server.ws_base}/jobs/{job_id}/stream?after={after}",
        headers=server.auth,
        connect_timeout=TIMEOUT,
        request_timeout=TIMEOUT,
    )
    return await websocket_connect(req, max_message_size=64 * 1024 * 1024)


def is_type(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("type") == kind


def is_status(*statuses: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: (
        m.get("type") == "event"
        and m.get("event") == "status"
        and m.get("data", {}).get("status") in statuses
    )


# ---------------------------------------------------------------------------- /health prober


def probe_health(port: int, interval: float, count: int, stop: Any, ready: Any, out: Any) -> None:
    """Runs in its own process: GET /health every ``interval`` s on one keep-alive connection.

    Stops after ``count`` probes (0: when ``stop`` is set); puts {samples, errors} on ``out``.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    samples: list[float] = []
    errors: list[str] = []
    due = time.perf_counter()
    while not stop.is_set() and (count == 0 or len(samples) + len(errors) < count):
        t0 = time.perf_counter()
        try:
            conn.request("GET", f"{API}/health")
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                samples.append(time.perf_counter() - t0)
            else:
                errors.append(f"HTTP {resp.status}")
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        ready.set()
        due += interval
        delay = due - time.perf_counter()
        if delay > 0:
            stop.wait(delay)  # the probing period; wakes early when told to stop
        else:
            due = time.perf_counter()
    conn.close()
    out.put({"samples": samples, "errors": errors})


class Prober:
    """The /health prober in a separate process, so client-side load cannot inflate it."""

    def __init__(self, server: Server, interval: float, count: int = 0) -> None:
        ctx = mp.get_context("spawn")
        self.stop_event = ctx.Event()
        self.ready = ctx.Event()
        self.out = ctx.Queue()
        self.proc = ctx.Process(
            target=probe_health,
            args=(server.port, interval, count, self.stop_event, self.ready, self.out),
            daemon=True,
        )

    async def start(self) -> None:
        self.proc.start()
        if not await asyncio.to_thread(self.ready.wait, TIMEOUT):
            raise TimeoutError("the /health prober did not start")

    async def finish(self, stop: bool = True) -> tuple[list[float], list[str]]:
        if stop:
            self.stop_event.set()
        result = await asyncio.to_thread(self.out.get, True, 600)
        await asyncio.to_thread(self.proc.join, 30)
        return result["samples"], result["errors"]


# ---------------------------------------------------------------------------- 1 + 2: stop


async def stop_one(api: Api, server: Server, job_id: str) -> tuple[float, float, float, str]:
    """Stop a running job watched by a stream: (round trip, ->stopping, ->cancelled, final)."""
    stream = await Stream.open(server, job_id)
    try:
        snap = (await stream.wait_for(is_type("snapshot"))).msg
        if snap["last_seq"] > 0:  # the backlog is in before the clock starts
            await stream.wait_for(
                lambda m: m.get("type") == "event" and m["seq"] >= snap["last_seq"]
            )
        mark = len(stream.frames)
        t0 = time.perf_counter()
        rtt, job = await api.call("POST", f"/jobs/{job_id}/stop", expect=(202,))
        if job["status"] != "stopping":
            raise ApiError(f"stop of a running job answered status {job['status']!r}")
        stopping = await stream.wait_for(is_status("stopping"), start=mark)
        cancelled = await stream.wait_for(
            lambda m: is_status("cancelled")(m) or m.get("type") == "done", start=mark
        )
        done = await stream.wait_for(is_type("done"), start=mark)
        return rtt, stopping.t - t0, cancelled.t - t0, done.msg["status"]
    finally:
        await stream.close()


async def bench_stop(api: Api, server: Server, sizes: Sizes, report: Report) -> None:
    n = sizes.stop_jobs
    print(f"[1,2] starting {n} cooperative jobs ...", flush=True)
    jobs = await asyncio.gather(*(api.training("cooperative", {}, start=True) for _ in range(n)))
    ids = [j["id"] for j in jobs]
    try:
        t0 = time.perf_counter()
        await api.wait_jobs(ids, lambda j: j["status"] == "running", "running", timeout=300)
        report.check("stop_jobs_all_running_s", round(time.perf_counter() - t0, 2))
        rtts, to_stopping, to_cancelled, finals = [], [], [], Counter[str]()
        for job_id in ids:  # one at a time, the others still running
            rtt, stopping, cancelled, final = await stop_one(api, server, job_id)
            rtts.append(rtt)
            to_stopping.append(stopping)
            to_cancelled.append(cancelled)
            finals[final] += 1
        report.add("stop_rtt", f"1  POST /stop round trip ({n} running jobs)", rtts)
        report.add("stop_to_stopping_ws", "2  stop -> 'stopping' event on WS", to_stopping)
        report.add("stop_to_cancelled_ws", "2  stop -> 'cancelled' event on WS", to_cancelled)
        report.check("stop_final_status", dict(finals))
        if set(finals) != {"cancelled"}:
            report.problem(f"stopped jobs ended {dict(finals)}, expected all 'cancelled'")
    finally:
        await api.settle(ids)


# ---------------------------------------------------------------------------- 3: event latency


async def measure_ticker(api: Api, server: Server, sizes: Sizes, report: Report) -> list[float]:
    """Run a ticker job watched from before its start; log call -> frame receipt latencies."""
    config = {"rate": sizes.tick_rate, "seconds": sizes.tick_seconds}
    job = await api.training("ticker", config, start=False)
    stream = await Stream.open(server, job["id"])
    try:
        await stream.wait_for(is_type("snapshot"))
        await api.call("POST", f"/jobs/{job['id']}/start")
        api.started.add(job["id"])
        done = await stream.wait_for(is_type("done"), timeout=sizes.tick_seconds + TIMEOUT)
    finally:
        await stream.close()
    if done.msg["status"] != "completed":
        report.problem(f"ticker job {job['id']} ended {done.msg['status']!r}")
    latencies = []
    for frame in stream.frames:
        m = frame.msg
        if m.get("type") == "event" and m.get("event") == "log":
            match = TICK_RE.match(m["data"].get("line", ""))
            if match:
                latencies.append(frame.wall - float(match.group(1)))
    expected = int(sizes.tick_seconds * sizes.tick_rate)
    if len(latencies) != expected:
        report.problem(f"ticker: {len(latencies)} tick lines on the WS, expected {expected}")
    return latencies


async def total_seq(api: Api, ids: Sequence[str]) -> int:
    return sum(j["last_seq"] for j in await asyncio.gather(*(api.get(i) for i in ids)))


async def bench_latency(api: Api, server: Server, sizes: Sizes, report: Report) -> None:
    print("[3] worker event -> WS latency, idle ...", flush=True)
    idle = await measure_ticker(api, server, sizes, report)
    report.add("event_to_ws_idle", f"3  job.log -> WS client ({sizes.tick_rate:g}/s, idle)", idle)

    k = sizes.load_jobs
    print(f"[3] ... and under load: {k} jobs at {sizes.load_rate:g} lines/s each", flush=True)
    load = await asyncio.gather(
        *(api.training("firehose", {"rate": sizes.load_rate}, start=True) for _ in range(k))
    )
    ids = [j["id"] for j in load]
    try:
        await api.wait_jobs(ids, lambda j: j["last_seq"] > 100, "writing", timeout=300)
        seq0, t0 = await total_seq(api, ids), time.perf_counter()
        loaded = await measure_ticker(api, server, sizes, report)
        seq1, t1 = await total_seq(api, ids), time.perf_counter()
        rate = (seq1 - seq0) / (t1 - t0)
        report.add("event_to_ws_load", f"3  job.log -> WS client ({k} jobs writing)", loaded)
        report.check("load_events_per_s", round(rate))
        report.check("load_events_per_s_target", round(k * sizes.load_rate))
    finally:
        await api.settle(ids)


# ---------------------------------------------------------------------------- 4: replay


@dataclass
class Replay:
    seconds: float
    count: int
    gaps: int
    duplicates: int
    out_of_order: int
    done_status: str | None
    done_last_seq: int | None
    close_code: int | None


async def replay_client(server: Server, job_id: str, last_seq: int) -> Replay:
    """Read the whole stream from after=0 until done; check seqs 1..last_seq exactly once.

    The time is taken at the done frame; reading goes on until the server closes the
    socket, so its close code (1000 expected) is seen.
    """
    t0 = time.perf_counter()
    conn = await ws_connect(server, job_id, 0)
    seqs: list[int] = []
    done: dict[str, Any] | None = None
    elapsed: float | None = None
    while (raw := await conn.read_message()) is not None:
        msg = json.loads(raw)
        if msg["type"] == "event":
            seqs.append(msg["seq"])
        elif msg["type"] == "done":
            done, elapsed = msg, time.perf_counter() - t0
    if elapsed is None:
        elapsed = time.perf_counter() - t0
    unique = set(seqs)
    return Replay(
        seconds=elapsed,
        count=len(seqs),
        gaps=sum(1 for s in range(1, last_seq + 1) if s not in unique),
        duplicates=len(seqs) - len(unique),
        out_of_order=sum(1 for a, b in itertools.pairwise(seqs) if b <= a),
        done_status=done["status"] if done else None,
        done_last_seq=done["last_seq"] if done else None,
        close_code=conn.close_code,
    )


async def bench_replay(api: Api, server: Server, sizes: Sizes, report: Report) -> None:
    n, c = sizes.replay_events, sizes.replay_clients
    print(f"[4] a job with {n} events ...", flush=True)
    job = await api.training("burst", {"count": n}, start=True)
    rows = await api.wait_jobs([job["id"]], lambda j: j["status"] in TERMINAL, "terminal", 300)
    final = rows[job["id"]]
    if final["status"] != "completed":
        report.problem(f"replay source job ended {final['status']!r}")
    last_seq = final["last_seq"]
    report.check("replay_job_last_seq", last_seq)

    print(f"[4] /health idle ({sizes.idle_probes} probes) ...", flush=True)
    idle = Prober(server, sizes.probe_interval, count=sizes.idle_probes)
    await idle.start()
    idle_samples, idle_errors = await idle.finish(stop=False)
    report.add("health_idle", "4  GET /health, idle", idle_samples)

    print(f"[4] /health while {c} clients replay from after=0 ...", flush=True)
    prober = Prober(server, sizes.probe_interval)
    await prober.start()
    t0 = time.perf_counter()
    cpu = CpuMeter(server)
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(replay_client(server, job["id"], last_seq) for _ in range(c))), 900
        )
    finally:
        samples, errors = await prober.finish()
    wall = time.perf_counter() - t0
    report.check("replay_cpu", cpu.result())
    report.add("health_during_replay", f"4  GET /health during {c} replays", samples)
    report.add(
        "replay_time",
        f"4  replay time per client ({last_seq} events)",
        [r.seconds for r in results],
    )
    summarize_replays(results, last_seq, wall, idle_errors + errors, report)


def summarize_replays(
    results: list[Replay], last_seq: int, wall: float, probe_errors: list[str], report: Report
) -> None:
    gaps = sum(r.gaps for r in results)
    dups = sum(r.duplicates for r in results)
    disorder = sum(r.out_of_order for r in results)
    incomplete = [r for r in results if r.done_status is None or r.done_last_seq != last_seq]
    codes = Counter(str(r.close_code) for r in results)
    report.check("replay_gaps_total", gaps)
    report.check("replay_duplicates_total", dups)
    report.check("replay_out_of_order_total", disorder)
    report.check("replay_clients_without_done", len(incomplete))
    report.check("replay_close_codes", dict(codes))
    report.check("replay_wall_s", round(wall, 2))
    report.check("replay_events_per_s_total", round(sum(r.count for r in results) / wall))
    report.check("health_probe_errors", len(probe_errors))
    if gaps or dups or disorder or incomplete:
        report.problem(
            f"replay: {gaps} gaps, {dups} duplicates, {disorder} out of order, "
            f"{len(incomplete)} client(s) without a complete done frame"
        )
    if probe_errors:
        report.problem(f"/health prober errors: {Counter(probe_errors).most_common(3)}")


# ---------------------------------------------------------------------------- 5: list


async def create_pending(api: Api, n: int, concurrency: int) -> tuple[list[float], float]:
    """Create n pending command jobs, ``concurrency`` requests in flight; (latencies, wall)."""
    body = {"kind": "command", "spec": {"argv": ["true"]}}
    latencies: list[float] = []
    queue = iter(range(n))

    async def worker() -> None:
        for _ in queue:
            dt, _job = await api.call("POST", "/jobs", body, expect=(201,))
            latencies.append(dt)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - t0


async def timed_gets(api: Api, path: str, n: int, expect_len: int) -> list[float]:
    samples = []
    for _ in range(n):
        dt, page = await api.call("GET", path)
        if len(page["jobs"]) != expect_len:
            raise ApiError(f"GET {path} returned {len(page['jobs'])} jobs, expected {expect_len}")
        samples.append(dt)
    return samples


async def bench_list(api: Api, server: Server, sizes: Sizes, report: Report) -> None:
    n = sizes.list_jobs
    print(f"[5] creating {n} pending jobs ({sizes.create_concurrency} in flight) ...", flush=True)
    cpu = CpuMeter(server)
    created, wall = await create_pending(api, n, sizes.create_concurrency)
    report.check("create_cpu", cpu.result())
    report.add(
        "create_pending", f"5  POST /jobs (pending, {sizes.create_concurrency} in flight)", created
    )
    report.check("create_jobs_per_s", round(n / wall, 1))
    print(f"[5] GET /jobs?limit=50 x{sizes.list_gets} ...", flush=True)
    first = await timed_gets(api, "/jobs?limit=50", sizes.list_gets, 50)
    report.add("list_first_page", f"5  GET /jobs?limit=50 (>= {n} jobs)", first)
    pending = await timed_gets(api, "/jobs?status=pending&limit=50", sizes.list_gets, 50)
    report.add("list_pending_page", "5  GET /jobs?status=pending&limit=50", pending)


# ---------------------------------------------------------------------------- clean-up


def list_active(server: Server) -> list[dict[str, Any]]:
    """Every job in an active state, through the API (all pages)."""
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        url = f"{server.base}/jobs?status={','.join(ACTIVE)}&limit=1000"
        status, page = http_json("GET", url + (f"&cursor={cursor}" if cursor else ""), server.auth)
        if status != 200:
            raise ApiError(f"GET /jobs (active) -> {status} {page}")
        found.extend(page["jobs"])
        if not page["next"]:
            return found
        cursor = page["next"]


def stop_all_jobs(server: Server, timeout: float = 90.0) -> list[str]:
    """Stop every active job via the API and wait until none is active; returns problems."""
    if not server.alive():
        return ["the server was not running at clean-up: jobs could not be stopped via the API"]
    problems: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            active = list_active(server)
        except (OSError, ApiError) as exc:
            return [f"clean-up could not list jobs: {exc}"]
        if not active:
            return problems
        if time.monotonic() > deadline:
            ids = ", ".join(f"{j['id']}={j['status']}" for j in active[:10])
            return [*problems, f"{len(active)} job(s) still active after {timeout:.0f} s: {ids}"]
        for job in active:
            if job["status"] != "stopping":
                status, body = http_json(
                    "POST", f"{server.base}/jobs/{job['id']}/stop", server.auth, {}
                )
                if status not in (202, 409):
                    problems.append(f"clean-up stop of {job['id']} -> {status} {body}")
        time.sleep(POLL)


def sweep_leftovers(db_url: str) -> list[int]:
    """SIGKILL processes (supervisors, workers) still carrying our database URL; their pids."""
    return kill_pids(job_pids(db_url))


def server_log_findings(log_path: Path, limit: int = 15) -> tuple[Counter[str], list[str]]:
    """Counts of error/warning lines and 5xx answers in the server log, and a sample of them."""
    counts: Counter[str] = Counter()
    samples: list[str] = []
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return counts, ["(no server log)"]
    for line in lines:
        kind = None
        if re.search(r"\] 5\d\d (GET|POST|PUT|PATCH|DELETE) ", line):
            kind = "5xx"
        elif line.startswith("[E ") or "Traceback" in line:
            kind = "error"
        elif line.startswith("[W "):
            kind = "warning"
        if kind:
            counts[kind] += 1
            text = re.sub(r"^\[(\w) [\d\-: .]+", r"[\1 ", line)[:220]
            if text not in samples and len(samples) < limit:
                samples.append(text)
    return counts, samples


# ---------------------------------------------------------------------------- output


def print_header(info: dict[str, Any], sizes: Sizes, smoke: bool, extra: list[str]) -> None:
    print(f"jupyter_jobctl server benchmark ({'smoke' if smoke else 'full'} size)")
    print(
        f"machine: {info['cpu_count']} CPUs (affinity {info['cpu_affinity']}) {info['cpu_model']}, "
        f"{info['memory_gib']} GiB, load {info['loadavg_at_start']}"
    )
    print(
        f"         Python {info['python']}, tornado {info['tornado']}, jupyter_server "
        f"{info['jupyter_server']}, {info['platform']}"
    )
    print(f"sizes:   {asdict(sizes)}")
    if extra:
        print(f"server:  extra options {extra}")
    print(
        "setup:   real `jupyter server` subprocess, SQLite in a temp dir, 127.0.0.1; HTTP via "
        "tornado's simple client (new TCP connection per request);\n"
        "         /health prober in a separate process on one keep-alive connection",
        flush=True,
    )


# ---------------------------------------------------------------------------- main


# the server and sizes are those of the script running the figures (see ingest_soak_bench.py)
Figure = Callable[[Api, Any, Any, Report], Awaitable[None]]
FIGURES: list[tuple[str, Figure]] = [
    ("stop", bench_stop),
    ("latency", bench_latency),
    ("replay", bench_replay),
    ("list", bench_list),
]


async def run_figures(
    server: Server,
    sizes: Any,
    report: Report,
    only: set[str],
    figures: Sequence[tuple[str, Figure]] = FIGURES,
    seconds_checks: bool = False,
) -> None:
    """Each figure in turn; one failing is reported and the others still run.

    ``seconds_checks``: each figure's time is also a check (``<name>_s``).
    """
    api = Api(server)
    try:
        for name, fn in figures:
            if only and name not in only:
                continue
            t0 = time.perf_counter()
            try:
                await fn(api, server, sizes, report)
            except Exception as exc:
                report.problem(f"figure {name!r} failed: {type(exc).__name__}: {exc}")
            if seconds_checks:
                report.check(f"{name}_s", round(time.perf_counter() - t0, 1))
            print(f"    ({name}: {time.perf_counter() - t0:.1f} s)", flush=True)
    finally:
        report.check("client_unexpected_http", len(api.unexpected))
        for text in api.unexpected[:10]:
            report.problem(f"unexpected answer: {text}")
        api.close()


def run_on_server(
    server: Server,
    sizes: Any,
    args: argparse.Namespace,
    report: Report,
    figures: Sequence[tuple[str, Figure]] = FIGURES,
    seconds_checks: bool = False,
) -> Run:
    """Start the server and run the figures of ``--only``; then, whatever happened, stop
    every job, kill the server, sweep, and remove its temp dir (unless ``--keep``)."""
    t0 = time.perf_counter()
    try:
        with recorded(report) as run:
            report.check("server_start_s", round(server.start(), 2))
            only = {s for s in args.only.split(",") if s}
            asyncio.run(run_figures(server, sizes, report, only, figures, seconds_checks))
    finally:
        finish_server(server, report)
        report.check("total_s", round(time.perf_counter() - t0, 1))
        keep_or_remove(
            server.root, args.keep, f"kept {server.root} (server log: {server.log_path})"
        )
    return run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_run_options(p, "comma-separated figures to run: stop,latency,replay,list")
    add_server_arg(p, "--JobCtl.tail_interval=0.1")
    add_size_options(p, Sizes())
    return p.parse_args(argv)


def finish_server(server: Server, report: Report) -> None:
    """Stop every job via the API, kill the server's group, sweep what is left; report all."""
    for text in stop_all_jobs(server):
        report.problem(text)
    server.stop()
    leftovers = sweep_leftovers(server.db_url)
    report.check("leftover_processes_killed", len(leftovers))
    if leftovers:
        report.problem(f"{len(leftovers)} job process(es) outlived clean-up: {leftovers}")
    counts, samples = server_log_findings(server.log_path)
    report.check("server_log", dict(counts) or "no errors or warnings")
    report.server_log = samples


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    sizes = sizes_from(args, Sizes(), SMOKE)
    info = machine()
    print_header(info, sizes, args.smoke, args.server_arg)
    server = Server(Path(tempfile.mkdtemp(prefix="jobctl-server-bench-")), args.server_arg)
    report = Report()
    run = run_on_server(server, sizes, args, report)
    report.check("loadavg_at_end", loadavg())
    print_table(report)
    if args.json:
        write_json(args.json, {"machine": info, "sizes": asdict(sizes), **report.json_doc()})
    return run.exit_status()


if __name__ == "__main__":
    sys.exit(main())
