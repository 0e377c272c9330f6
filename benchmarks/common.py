"""What the benchmark scripts share: statistics, the report and its table rows, options,
the async client of the jobctl API (HTTP, WebSocket streams, a ``/health`` prober), and
filling a database. Real processes (servers, PostgreSQL, clean-up) come from
``tests/harness.py``, shared with the tests; job targets from ``tests/jobs.py``.

Imported by the scripts in this directory (run as ``benchmarks/<script>.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import multiprocessing as mp
import signal
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

from tests import jobs as targets  # noqa: E402  (the one module of job targets)
from tests.harness import (  # noqa: E402, F401  (re-exported to the scripts)
    API,
    JupyterServer,
    jobctl_options,
    merge_options,
    wait_for,
)

TIMEOUT = 120.0  # generous: a loaded 2-CPU machine must not turn a slow run into a crash
TERMINAL = frozenset({"completed", "failed", "cancelled", "lost"})
ACTIVE = ("initializing", "running", "paused", "stopping")
DEMO_SPEC: dict[str, Any] = {  # the demo trainer (a few epochs in smoke-test mode)
    "target": "jupyter_jobctl.examples.train:main",
    "config": {"mode": "smoke_test", "epochs": 5, "batch_size": 2, "learning_rate": 0.001}
    | {"optimizer": "adam"},
}


def target(name: str, **config: Any) -> dict[str, Any]:
    """A ``training`` spec running ``tests/jobs.py:<name>`` with ``config``."""
    return {"target": f"jobs:{name}", "config": config, "cwd": str(Path(targets.__file__).parent)}


# ---------------------------------------------------------------------------- statistics


def percentile(values: Iterable[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); NaN for no samples."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(seconds: Sequence[float]) -> dict[str, Any]:
    ms = [v * 1000.0 for v in seconds]
    return {
        "n": len(ms),
        **{f"p{q}_ms": percentile(ms, q) for q in (50, 95, 99)},
        "max_ms": max(ms, default=math.nan),
    }


@dataclass
class Report:
    """What a script measured: distributions (seconds), single values, what looked wrong."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, key: str, seconds: float | Iterable[float]) -> None:
        values = [seconds] if isinstance(seconds, (int, float)) else list(seconds)
        self.samples.setdefault(key, []).extend(values)

    def check(self, key: str, value: Any) -> None:
        self.checks[key] = value

    def problem(self, text: str) -> None:
        self.problems.append(text)
        print(f"  ! {text}", flush=True)  # as it happens: a long run may be cut short

    def doc(self, **extra: Any) -> dict[str, Any]:
        figures = {key: summary(values) for key, values in self.samples.items()}
        return {**extra, "figures": figures, "checks": self.checks, "problems": self.problems}


@contextlib.contextmanager
def recorded(report: Report) -> Iterator[None]:
    """An interruption or a crash becomes a problem, so the report is still written."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit) as exc:
        report.problem(f"interrupted ({type(exc).__name__}): the figures are incomplete")
    except Exception as exc:
        report.problem(f"{type(exc).__name__}: {exc}")


def exit_on_sigterm(signum: int, _frame: Any) -> None:
    """A plain ``kill`` unwinds through main()'s clean-up, so no job outlives the benchmark."""
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------- table rows


@dataclass
class Line:
    """One row of the results table (``run_all.py`` collects every script's rows)."""

    figure: int
    what: str
    backend: str
    p50: str
    p99: str
    goal: str = "—"
    comparison: str = ""
    verdict: str = "—"


def ms(value: Any) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"


def rate(value: Any) -> str:
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    return f"{value:,.0f}".replace(",", " ") if ok else "—"


def verdict(ok: bool | None) -> str:
    return "no data" if ok is None else ("PASS" if ok else "MISS")


def latency(
    figure: int,
    what: str,
    backend: str,
    fig: dict[str, Any] | None,
    limit_ms: float | None = None,
    comparison: str = "",
) -> Line:
    """A p50/p99 row of ``fig`` (a ``summary``); its goal, if any, is p99 < ``limit_ms``."""
    fig = fig or {}
    n = f"n={fig['n']}" if fig.get("n") else ""
    comparison = "; ".join(c for c in (comparison, n) if c)
    p99 = fig.get("p99_ms")
    ok = None if not fig.get("n") else (p99 < limit_ms if limit_ms else None)
    goal = f"p99 < {limit_ms:g} ms" if limit_ms else "—"
    mark = verdict(ok) if limit_ms else ("—" if fig.get("n") else "no data")
    return Line(figure, what, backend, ms(fig.get("p50_ms")), ms(p99), goal, comparison, mark)


def print_rows(lines: list[Line]) -> None:
    print()
    for ln in lines:
        print(f"[{ln.figure}] {ln.what} ({ln.backend}): p50 {ln.p50}; p99 {ln.p99}", end="")
        print(f"; goal {ln.goal}: {ln.verdict}" if ln.goal != "—" else "", end="")
        print(f"\n      {ln.comparison}" if ln.comparison else "")


def finish(report: Report, args: argparse.Namespace, rows: Callable[..., list[Line]], **doc: Any):
    """Print the script's rows, checks and problems, write ``--json``; the exit status."""
    out = report.doc(sizes=asdict(args.sizes), **doc)
    print_rows(rows(out, args.backend))
    return conclude(report, out, args.json)


def conclude(report: Report, doc: dict[str, Any], json_path: str | None, width: int = 40) -> int:
    """Print the checks and problems, write ``doc`` to ``json_path``; the exit status."""
    print("\nchecks:")
    for key, value in report.checks.items():
        print(f"  {key:<{width}} {value}")
    print(f"\nproblems: {len(report.problems) or 'none'}")
    for text in report.problems:
        print(f"  - {text}")
    if json_path:
        Path(json_path).write_text(json.dumps(doc, indent=1, default=str) + "\n")
        print(f"wrote {json_path}")
    return 1 if report.problems else 0


# ---------------------------------------------------------------------------- options

SizesT = TypeVar("SizesT")


def parse(
    doc: str,
    full: SizesT,
    smoke: SizesT,
    only: str = "",
    argv: list[str] | None = None,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """--smoke, --json, --backend (the name in the rows), --db-url, --only (``only``: the
    figures), the script's own ``options``, and one option per field of the sizes
    (``stop_runs`` -> ``--stop-runs``); ``args.sizes`` are the full or smoke ones with those."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes (the numbers mean nothing)")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON here")
    p.add_argument("--backend", default="", help="the backend named in the rows")
    p.add_argument("--db-url", help="an existing empty database (default: SQLite in a temp dir)")
    if only:
        p.add_argument("--only", default="", help=f"comma-separated figures: {only}")
    if options:
        options(p)
    for name, value in asdict(full).items():
        p.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=None)
    args = p.parse_args(argv)
    args.sizes = type(full)(**asdict(smoke if args.smoke else full))
    for name in asdict(full):
        if getattr(args, name) is not None:
            setattr(args.sizes, name, getattr(args, name))
    args.only = {s for s in getattr(args, "only", "").split(",") if s}
    args.backend = args.backend or ("PostgreSQL" if args.db_url else "SQLite")
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    return args


# ---------------------------------------------------------------------------- HTTP client


class ApiError(Exception):
    """An answer the benchmark did not expect from the API it measures."""


class Api:
    """Async JSON client of the jobctl API of ``server``; records every unexpected answer."""

    def __init__(self, server: JupyterServer, db_url: str = "") -> None:
        from tornado.httpclient import AsyncHTTPClient

        self.server, self.db_url = server, db_url
        self.client = AsyncHTTPClient(force_instance=True, max_clients=256)
        self.unexpected: list[str] = []

    async def call(
        self, method: str, path: str, body: Any = None, expect: Iterable[int] = (200,)
    ) -> tuple[float, Any]:
        """One request; returns (seconds, decoded body). Raises ApiError on another status."""
        from tornado.httpclient import HTTPRequest

        payload = json.dumps(body) if body is not None else ("" if method == "POST" else None)
        req = HTTPRequest(
            self.server.url + API + path,
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
            msg = f"{method} {path} -> {resp.code} {(resp.body or b'').decode()[:300]}"
            self.unexpected.append(msg)
            raise ApiError(msg)
        return elapsed, json.loads(resp.body) if resp.body else None

    async def create(self, kind: str, spec: dict[str, Any], start: bool = True) -> dict[str, Any]:
        body = {"kind": kind, "spec": spec, "start": start}
        return (await self.call("POST", "/jobs", body, expect=(201,)))[1]

    async def get(self, job_id: str) -> dict[str, Any]:
        return (await self.call("GET", f"/jobs/{job_id}"))[1]

    async def wait_jobs(
        self, ids: Sequence[str], done: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, dict[str, Any]]:
        """Poll the jobs until ``done(job)`` holds for every one; returns their last rows."""
        rows: dict[str, dict[str, Any]] = {}
        waiting, deadline = list(ids), time.monotonic() + TIMEOUT
        while waiting:
            got = await asyncio.gather(*(self.get(i) for i in waiting))
            rows.update({j["id"]: j for j in got})
            waiting = [j["id"] for j in got if not done(j)]
            if waiting and time.monotonic() > deadline:
                states = Counter(rows[i]["status"] for i in waiting)
                raise TimeoutError(
                    f"{len(waiting)} job(s) not {what} after {TIMEOUT:.0f} s: {states}"
                )
            await asyncio.sleep(0.1)
        return rows

    async def settle(self, ids: Iterable[str]) -> None:
        """Stop whichever of these jobs is still active and wait until all are terminal."""
        ids = list(ids)
        rows = await asyncio.gather(*(self.get(i) for i in ids))
        live = [j["id"] for j in rows if j["status"] not in TERMINAL]
        await asyncio.gather(
            *(self.call("POST", f"/jobs/{i}/stop", expect=(202, 409)) for i in live)
        )
        await self.wait_jobs(ids, lambda j: j["status"] in TERMINAL, "terminal")

    async def stop_all(self) -> None:
        """Stop every active job of the server (clean-up)."""
        _, page = await self.call("GET", f"/jobs?status={','.join(ACTIVE)}&limit=1000")
        await self.settle(j["id"] for j in page["jobs"])

    def close(self) -> None:
        self.client.close()


async def ws_connect(server: JupyterServer, path: str) -> Any:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    req = HTTPRequest(
        server.ws_url + API + path,
        headers=server.auth,
        connect_timeout=TIMEOUT,
        request_timeout=TIMEOUT,
    )
    return await websocket_connect(req, max_message_size=64 * 1024 * 1024)


@dataclass
class Frame:
    t: float  # perf_counter at receipt
    wall: float  # time.time() at receipt
    msg: dict[str, Any]


class Stream:
    """A job's stream read by a background task; frames are stamped on receipt."""

    def __init__(self, conn: Any, job_id: str) -> None:
        self.conn, self.job_id = conn, job_id
        self.frames: list[Frame] = []
        self.closed = False
        self._changed = asyncio.Event()
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, server: JupyterServer, job_id: str) -> Stream:
        stream = cls(await ws_connect(server, f"/jobs/{job_id}/stream?after=0"), job_id)
        await stream.wait_for(lambda m: m["type"] == "snapshot")
        return stream

    async def _read(self) -> None:
        while (raw := await self.conn.read_message()) is not None:
            self.frames.append(Frame(time.perf_counter(), time.time(), json.loads(raw)))
            self._changed.set()
        self.closed = True
        self._changed.set()

    async def wait_for(self, pred: Callable[[dict[str, Any]], bool], start: int = 0) -> Frame:
        """The first frame from index ``start`` on that matches ``pred`` (waits for it)."""
        deadline = time.monotonic() + TIMEOUT
        i = start
        while True:
            while i < len(self.frames):
                if pred(self.frames[i].msg):
                    return self.frames[i]
                i += 1
            if self.closed or time.monotonic() > deadline:
                why = "closed" if self.closed else f"no matching frame in {TIMEOUT:.0f} s"
                raise TimeoutError(f"stream {self.job_id}: {why}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 1.0)

    async def close(self) -> None:
        self.conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 10)


def is_log(line: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("event") == "log" and m["data"].get("line") == line


def is_status(*statuses: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: (
        m["type"] == "done" or (m.get("event") == "status" and m["data"].get("status") in statuses)
    )


def probe_health(port: int, interval: float, count: int, stop: Any, ready: Any, out: Any) -> None:
    """In its own process: GET /health every ``interval`` s on one keep-alive connection,
    ``count`` times (0: until ``stop`` is set); puts {samples, errors} on ``out``."""
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
            (samples if resp.status == 200 else errors).append(time.perf_counter() - t0)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        ready.set()
        due = max(due + interval, time.perf_counter())
        stop.wait(due - time.perf_counter())
    out.put({"samples": samples, "errors": errors})


class Prober:
    """The /health prober in a separate process, so client-side load cannot inflate it."""

    def __init__(self, server: JupyterServer, interval: float = 0.05, count: int = 0) -> None:
        ctx = mp.get_context("spawn")
        self.stop, self.ready, self.out = ctx.Event(), ctx.Event(), ctx.Queue()
        args = (server.port, interval, count, self.stop, self.ready, self.out)
        self.proc = ctx.Process(target=probe_health, args=args, daemon=True)

    async def __aenter__(self) -> Prober:
        self.proc.start()
        if not await asyncio.to_thread(self.ready.wait, TIMEOUT):
            raise TimeoutError("the /health prober did not start")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()

    async def result(self) -> tuple[list[float], list[str]]:
        self.stop.set()
        result = await asyncio.to_thread(self.out.get, True, TIMEOUT)
        await asyncio.to_thread(self.proc.join, 30)
        return result["samples"], result["errors"]


class CpuMeter:
    """CPU seconds used by this process and the server over a phase, and its wall time."""

    def __init__(self, server: JupyterServer) -> None:
        import psutil

        self.server = psutil.Process(server.proc.pid) if server.proc else None
        self.t0, self.client0, self.server0 = time.perf_counter(), time.process_time(), self._cpu()

    def _cpu(self) -> float:
        return sum(self.server.cpu_times()[:2]) if self.server else math.nan

    def result(self) -> dict[str, float]:
        return {
            "wall_s": round(time.perf_counter() - self.t0, 2),
            "server_cpu_s": round(self._cpu() - self.server0, 2),
            "client_cpu_s": round(time.process_time() - self.client0, 2),
        }


# ---------------------------------------------------------------------------- the database


def fill_jobctl(db_url: str, rows: int, base: float) -> float:
    """N completed command jobs with their status events, as a real run leaves them, in one
    bulk insert through jobctl's own tables (``create_job`` is a transaction per job)."""
    from sqlalchemy import create_engine, insert

    from jupyter_jobctl.db.models import events, jobs
    from jupyter_jobctl.db.store import Store

    t0 = time.perf_counter()
    store = Store(db_url)
    store.upgrade()
    store.close()
    host, spec = socket.gethostname(), json.dumps({"argv": ["true"]})
    trail = ["pending", "initializing", "running", "completed"]
    job_rows, event_rows = [], []
    for i in range(rows):
        job_id, created = uuid.uuid4().hex, base + i
        job_rows.append(
            {"id": job_id, "kind": "command", "name": f"job{i}", "status": "completed"}
            | {"spec": spec, "attempt": 1, "created_at": created, "updated_at": created + 2}
            | {"started_at": created + 0.05, "finished_at": created + 2, "last_seq": 4}
            | {"metrics": "{}", "exit_code": 0, "host": host}
        )
        for seq, status in enumerate(trail, 1):
            data = json.dumps({"status": status, "from": trail[seq - 2] if seq > 1 else None})
            event_rows.append(
                {"job_id": job_id, "seq": seq, "type": "status", "ts": created + seq / 2}
                | {"data": data}
            )
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(insert(jobs), job_rows)
        conn.execute(insert(events), event_rows)
    engine.dispose()
    return time.perf_counter() - t0
