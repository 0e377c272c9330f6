"""Run every benchmark and write ``benchmarks/RESULTS.md`` (what ``make bench`` does).

Run from the repository root:

    .venv/bin/python benchmarks/run_all.py                  # full sizes, ~10 min on 2 CPUs
    .venv/bin/python benchmarks/run_all.py --smoke          # tiny sizes; writes a temp file
    .venv/bin/python benchmarks/run_all.py --only engine,batch --out /tmp/RESULTS.md

Each step runs one script as a subprocess (its own session and ``TMPDIR``) with
``--json``; the script's own ``rows(doc, backend)`` turns what it wrote into table rows.
The steps on PostgreSQL share one throw-away cluster (``tests/harness.py``), a fresh
database each. Whatever a step leaves behind (job processes found by their database) is
killed and reported; the cluster is stopped in a ``finally``.

Exit status: 0 when every step produced its numbers (a MISS is a result, not an error),
1 when a step crashed or timed out, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import REPO, Line, exit_on_sigterm

from tests.harness import PostgresCluster, end_group, job_pids, kill_pids, pg_bin

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "RESULTS.md"
PG = "PostgreSQL"


@dataclass
class Step:
    name: str
    script: str
    args: list[str] = field(default_factory=list)
    backend: str = "SQLite"  # as named in the rows; PostgreSQL: a fresh database
    full: list[str] = field(default_factory=list)  # the full run's sizes (not --smoke's)
    timeout: float = 900.0


NICE = ["--only=ingest", "--ingest-baseline-seconds=0", "--server-arg=--JobCtl.job_nice=5"]
STEPS = [
    Step("engine", "engine_bench.py", full=["--runs=5"]),
    Step("server", "server_bench.py"),
    Step("batch", "batch_bench.py"),
    Step("scheduler", "scheduler_compare.py"),
    Step("server-pg", "server_bench.py", ["--only=stop,latency,ingest,list"], PG),
    Step("ingest-nice", "server_bench.py", NICE, "SQLite, `job_nice=5`"),
    # its own PostgreSQL, Dask cluster and servers: dask vs local executor, NOTIFY vs poll
    Step("dask", "dask_bench.py", backend="PostgreSQL + Dask", full=["--stop-runs=15"]),
]


@dataclass
class Outcome:
    step: Step
    seconds: float = 0.0
    returncode: int | None = None
    lines: list[Line] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str = ""


def run_step(step: Step, smoke: bool, run_dir: Path, cluster: PostgresCluster | None) -> Outcome:
    out, tmp = Outcome(step), run_dir / step.name
    tmp.mkdir()
    json_path = tmp / "result.json"
    argv = [
        sys.executable,
        str(BENCH / step.script),
        *step.args,
        *(["--smoke"] if smoke else step.full),
    ]
    argv += [f"--backend={step.backend}", f"--json={json_path}"]
    db_url = cluster.create_database("bench") if cluster else f"sqlite:///{tmp}"
    if cluster:
        argv.append(f"--db-url={db_url}")
    print(f"\n=== {step.name}: {' '.join(argv[1:])}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=REPO, env={**os.environ, "TMPDIR": str(tmp)}, start_new_session=True
    )
    try:
        out.returncode = proc.wait(step.timeout)
    except subprocess.TimeoutExpired:
        out.error = f"timed out after {step.timeout:.0f} s"
    finally:
        end_group(proc, 90.0)  # the scripts clean up on SIGTERM
        out.seconds = time.perf_counter() - t0
        if left := kill_pids(job_pids(db_url)):
            out.problems.append(f"{len(left)} job process(es) left behind and killed: {left}")
    with contextlib.suppress(OSError, ValueError):
        doc: dict[str, Any] = json.loads(json_path.read_text())
        out.lines = importlib.import_module(Path(step.script).stem).rows(doc, step.backend)
        out.problems += doc.get("problems", [])
    if not out.lines and not out.error:
        out.error = f"exit status {out.returncode} and no figures"
    print(f"=== {step.name}: {out.seconds:.1f} s, exit {out.returncode}", flush=True)
    return out


def machine(pg: str) -> dict[str, str]:
    import jupyter_server
    import psutil

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True)
    model = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
         if ln.startswith("model name")), "unknown",
    )  # fmt: skip
    return {
        "CPU": f"{model}, {len(os.sched_getaffinity(0))} usable of {os.cpu_count()} CPUs",
        "Memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": pg,
        "jupyter_server": jupyter_server.__version__,
        "Commit": commit.stdout.decode().strip() or "unknown",
        "Date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "Load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def render(outcomes: list[Outcome], info: dict[str, str], smoke: bool, total_s: float) -> str:
    lines = sorted((ln for o in outcomes for ln in o.lines), key=lambda ln: ln.figure)
    table = [
        "| # | figure | backend | p50 | p99 (or rate) | goal | comparison | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ln in lines:
        cells = [str(ln.figure), ln.what, ln.backend, ln.p50, ln.p99, ln.goal, ln.comparison]
        table.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + f" | {ln.verdict} |")
    steps = ["| step | backend | script and options | time | status |", "|---|---|---|---|---|"]
    for o in outcomes:
        cmd = " ".join([o.step.script, *o.step.args, *(["--smoke"] if smoke else o.step.full)])
        status = o.error or f"exit {o.returncode}"
        steps.append(
            f"| {o.step.name} | {o.step.backend} | `{cmd}` | {o.seconds:.0f} s | {status} |"
        )
    problems = [f"- {o.step.name}: {p}" for o in outcomes for p in [*o.problems, o.error] if p]
    size = "smoke (tiny sizes: the numbers mean nothing)" if smoke else "full"
    return "\n".join(
        [
            "# Benchmark results",
            "",
            f"Written by `benchmarks/run_all.py` ({size} run, {total_s / 60:.1f} min in total).",
            "Every latency is a distribution over the run; the verdict compares p99 with the",
            "goal unless the goal says otherwise. Comparisons were measured in the same run.",
            "",
            "## Machine",
            "",
            *(f"- **{k}**: {v}" for k, v in info.items()),
            "",
            "## Figures",
            "",
            *table,
            "",
            "## Steps",
            "",
            *steps,
            "",
            "## Problems the scripts reported",
            "",
            *(problems or ["none"]),
            "",
            "## How to reproduce",
            "",
            "`make bench` on a clean clone (it installs the test extras; PostgreSQL comes from",
            "Debian's `postgresql` package, which `make test` installs; jupyter-scheduler is",
            "installed from PyPI into `~/.cache/jupyter_jobctl/`), or `.venv/bin/python",
            "benchmarks/run_all.py [--smoke] [--only STEPS] [--out PATH]`. Each script also",
            "runs alone; see its `--help` (`--smoke`, `--json`, one option per size).",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes (the test suite runs this)")
    p.add_argument("--out", help=f"markdown to write (default {RESULTS}; smoke: a temp file)")
    p.add_argument("--only", default="", help=f"steps: {','.join(s.name for s in STEPS)}")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    only = {s for s in args.only.split(",") if s}
    steps = [s for s in STEPS if not only or s.name in only]
    out = Path(args.out or (tempfile.mkstemp(suffix="-RESULTS.md")[1] if args.smoke else RESULTS))
    bin_dir = pg_bin()
    info = machine(PostgresCluster(bin_dir).version() if bin_dir else "not installed")
    run_dir = Path(tempfile.mkdtemp(prefix="jobctl-run-all-"))
    outcomes: list[Outcome] = []
    t0 = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            cluster = None
            for step in steps:
                if step.backend == PG and cluster is None:
                    if bin_dir is None:
                        outcomes.append(Outcome(step, error="PostgreSQL is not installed"))
                        continue
                    cluster = stack.enter_context(PostgresCluster(bin_dir))
                outcomes.append(
                    run_step(step, args.smoke, run_dir, cluster if step.backend == PG else None)
                )
    except KeyboardInterrupt:
        print("interrupted: every step was ended and cleaned up", flush=True)
        return 130
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    total = time.perf_counter() - t0
    out.write_text(render(outcomes, info, args.smoke, total))
    for o in outcomes:
        print(f"  {o.step.name:<12} {o.seconds:7.1f} s  {o.error or 'ok'}")
    print(f"  {'total':<12} {total:7.1f} s\nwrote {out}")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
