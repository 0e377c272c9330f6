"""What a client may send and a job may store is bounded, and refused with a 400 that names
the field: nesting depth, non-finite numbers, lone surrogates, jobctl's own env variables,
a relative cwd that leaves root_dir; the log of one job (``max_log_bytes_per_job``)."""

from __future__ import annotations

import json
import os
import sys
import threading
import tracemalloc
from collections import deque
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from conftest import SQLITE_ONLY, TESTS_DIR, log_lines, wait_terminal
from jupyter_jobctl.core.errors import SpecError
from jupyter_jobctl.core.specs import validate_job
from jupyter_jobctl.manager import JobManager
from jupyter_jobctl.procs import supervisor


def strict(text: str):
    def refuse(token: str):
        raise AssertionError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def post(jp_fetch):
    async def call(raw: str | bytes, *path: str):
        try:
            r = await jp_fetch("jobctl", "api", *(path or ("jobs",)), method="POST", body=raw)
        except HTTPClientError as e:
            r = e.response
        assert r is not None
        return r.code, strict(r.body.decode()) if r.body else None

    return call


def _nested(depth: int) -> str:
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


async def test_deep_nesting_is_refused_at_the_door(post, jp_fetch) -> None:
    # a config ~978 deep used to be stored (201), after which every GET /jobs answered 500
    config = _nested(978)
    code, body = await post(f'{{"kind":"training","spec":{{"target":"a:b","config":{config}}}}}')
    assert code == 400, body
    assert body["field"] == "spec.config" and "nested more than 64 levels" in body["error"]
    # deeper than the parser goes (it used to answer 500 with a traceback)
    code, body = await post(f'{{"kind":"training","spec":{_nested(150_000)}}}')
    assert code == 400 and body["field"] == "spec.a", body
    code, body = await post("[" * 300_000)
    assert code == 400 and body["field"] == "body", body
    # 64 levels in all is fine
    code, body = await post(
        f'{{"kind":"training","spec":{{"target":"a:b","config":{_nested(61)}}}}}'
    )
    assert code == 201, body
    r = await jp_fetch("jobctl", "api", "jobs")
    assert r.code == 200 and strict(r.body.decode())["jobs"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"kind":"training","spec":{"target":"a:b","config":{"lr":NaN}}}', "spec.config.lr"),
        (
            '{"kind":"training","spec":{"target":"a:b","config":{"x":[1,Infinity]}}}',
            "spec.config.x[1]",
        ),
        ('{"kind":"training","spec":{"target":"a:b","config":{"x":-Infinity}}}', "spec.config.x"),
        ('{"kind":"command","spec":{"argv":["echo"]},"name":"bad \\ud800 name"}', "name"),
        ('{"kind":"command","spec":{"argv":["echo","\\udc00"]}}', "spec.argv[1]"),
        ('{"kind":"command","spec":{"argv":["echo"],"env":{"A":"x\\ud834"}}}', "spec.env.A"),
        ('{"kind":"command","spec":{"argv":["echo"],"env":{"A\\ud800":"x"}}}', "spec.env.A\\ud800"),
        (
            '{"kind":"command","spec":{"argv":["echo"],"env":{"JOBCTL_JOB_NICE":"-5"}}}',
            "spec.env.JOBCTL_JOB_NICE",
        ),
        (
            '{"kind":"command","spec":{"argv":["echo"],"env":{"JOBCTL_DB_URL":"sqlite://"}}}',
            "spec.env.JOBCTL_DB_URL",
        ),
        (
            '{"kind":"command","spec":{"argv":["echo"],"env":{"JOBCTL_HANDSHAKE_FD":"3"}}}',
            "spec.env.JOBCTL_HANDSHAKE_FD",
        ),
        ('{"kind":"command","spec":{"argv":["echo"],"cwd":"../../etc"}}', "spec.cwd"),
    ],
)
async def test_hostile_requests_answer_400_naming_the_field(post, body: str, field: str) -> None:
    code, answer = await post(body)
    assert code == 400, answer
    assert answer["field"] == field, answer
    assert answer["error"].startswith(field.split("[")[0].split(".")[0])


def test_the_manager_refuses_the_same(tmp_path: Path) -> None:
    """Python callers (CLI, magics through the API, tests) meet the same rules."""
    cases = [
        ({"target": "a:b", "config": {"lr": float("nan")}}, "spec.config.lr"),
        ({"target": "a:b", "env": {"JOBCTL_ATTEMPT": "7"}}, "spec.env.JOBCTL_ATTEMPT"),
        ({"target": "a:b", "cwd": "x\ud800"}, "spec.cwd"),
    ]
    for spec, field in cases:
        with pytest.raises(SpecError) as err:
            validate_job("training", spec, base_dir=str(tmp_path))
        assert err.value.field == field


async def test_relative_cwd_is_taken_from_root_dir(post, jp_root_dir: Path) -> None:
    (jp_root_dir / "project" / "data").mkdir(parents=True)
    code, job = await post('{"kind":"command","spec":{"argv":["true"],"cwd":"project/data"}}')
    assert code == 201, job
    assert job["spec"]["cwd"] == str(jp_root_dir / "project" / "data")
    code, job = await post('{"kind":"command","spec":{"argv":["true"],"cwd":"project/../project"}}')
    assert code == 201 and job["spec"]["cwd"] == str(jp_root_dir / "project")
    code, answer = await post('{"kind":"command","spec":{"argv":["true"],"cwd":"project/../../"}}')
    assert code == 400 and answer["field"] == "spec.cwd" and "root directory" in answer["error"]
    code, answer = await post('{"kind":"command","spec":{"argv":["true"],"cwd":"missing"}}')
    assert code == 400 and answer["field"] == "spec.cwd"
    assert str(jp_root_dir) in answer["error"]


@SQLITE_ONLY
def test_a_stored_spec_cannot_override_jobctl_env(make_manager, tmp_path: Path) -> None:
    """A spec stored before the rule (JOBCTL_JOB_NICE in env) is filtered by the supervisor."""
    from conftest import forge_row

    m: JobManager = make_manager()
    out = tmp_path / "nice.txt"
    job, _ = m.create(
        "command",
        {
            "argv": [
                sys.executable,
                "-c",
                f"import os; open({str(out)!r}, 'w').write(str(os.nice(0)))",
            ]
        },
    )
    spec = json.loads(m.store.get_row(job["id"])["spec"])
    spec["env"] = {"JOBCTL_JOB_NICE": "7", "JOBCTL_DB_URL": "sqlite:////nowhere/x.db"}
    forge_row(m, job["id"], spec=json.dumps(spec))
    m.start(job["id"])
    assert wait_terminal(m, job["id"])["status"] == "completed"
    assert out.read_text() == str(os.nice(0))  # the server's niceness, not the spec's


# ---------------------------------------------------------------- what one job may store


def test_the_log_pump_never_holds_a_whole_long_line() -> None:
    """A 30 MB line without a newline passes through the supervisor's pump in pieces, and
    the pump's memory stays around a chunk (not the line)."""
    r, w = os.pipe()
    queue: deque = deque()
    size = 30 * (1 << 20)
    tracemalloc.start()
    try:
        pump = supervisor._LogPump(os.fdopen(r, "rb"), "stdout", queue)
        chunk = b"q" * (1 << 20)
        drained = 0

        def drain() -> None:  # as the supervisor's flush does, so the queue stays small
            nonlocal drained
            while pump.thread.is_alive() or queue:
                while queue:
                    drained += len(queue.popleft()[1]["line"])

        reader = threading.Thread(target=drain)
        reader.start()
        for _ in range(size // len(chunk)):
            os.write(w, chunk)
        os.close(w)
        pump.thread.join(30)
        reader.join(30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert drained == size
    assert peak < 4 * (1 << 20), f"the pump held {peak} bytes"


@SQLITE_ONLY
def test_a_flooding_job_stores_at_most_its_limit_and_its_tail(make_manager) -> None:
    limit = 256 * 1024
    m: JobManager = make_manager(max_log_bytes=limit)
    spec = {
        "target": "hostile_jobs:flood_stdout",
        "config": {"lines": 20_000, "width": 100, "long": 8 << 20},
        "cwd": str(TESTS_DIR),
    }
    job, _ = m.create("training", spec, start=True)
    final = wait_terminal(m, job["id"], timeout=120)
    assert final["status"] == "completed", final
    lines = log_lines(m, job["id"])
    marks = [i for i, line in enumerate(lines) if line.startswith("[jobctl] log truncated")]
    assert len(marks) == 2, marks  # when the limit was reached, and before the kept tail
    assert "past the job's log limit were not stored" in lines[marks[1]]
    assert lines[marks[0] - 1].startswith("0000")  # the head up to the limit
    assert lines[-1] == "the end" or "the end" in lines[-3:]  # the tail is kept
    row = m.store.get_row(job["id"])
    assert row["log_bytes"] <= limit + 1
    stored = sum(len(d) for _, t, _, d in m.store.events_raw(job["id"], 0, 10**6) if t == "log")
    assert stored < limit + (1 << 20) + 64 * 1024, stored  # the limit, the 1 MiB tail, notes
    seqs = [s for s, *_ in m.store.events_raw(job["id"], 0, 10**6)]
    assert seqs == list(range(1, len(seqs) + 1))  # still gapless


@SQLITE_ONLY
def test_job_log_past_the_limit_through_the_runtime(make_manager) -> None:
    """job.log() (the runtime's own store) obeys the same limit and keeps its tail."""
    m: JobManager = make_manager(max_log_bytes=64 * 1024)
    spec = {
        "target": "hostile_jobs:counter",
        "config": {"count": 40_000, "sleep": 0, "metric_every": 10**9},
        "cwd": str(TESTS_DIR),
    }
    job, _ = m.create("training", spec, start=True)
    assert wait_terminal(m, job["id"], timeout=120)["status"] == "completed"
    lines = log_lines(m, job["id"])
    assert any(line.startswith("[jobctl] log truncated") for line in lines)
    assert "count 39999" in lines and "done" in lines  # the tail (its last MiB)
    assert "count 0" in lines  # the head
    assert len([x for x in lines if x.startswith("count ")]) < 40_000
