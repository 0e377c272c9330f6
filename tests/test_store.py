"""The store on real SQLite files and a real PostgreSQL server: transitions, seqs, fencing."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import stat
import time
from pathlib import Path

import pytest

from jupyter_jobctl.core.errors import Conflict, JobNotFound, SpecError, StorageError
from jupyter_jobctl.core.states import TERMINAL
from jupyter_jobctl.db.store import MAX_LOG_LINE, Store, filesystem_type

GRACES = {"interrupt_after": 0.5, "stop_grace": 3.0, "kill_grace": 2.0, "heartbeat_interval": 1.0}


@pytest.fixture
def store(db_url: str):
    s = Store(db_url)
    s.upgrade()
    yield s
    s.close()


def _job(store: Store, **kw) -> dict:
    job, _ = store.create_job("command", kw.pop("name", "j"), {"argv": ["true"]}, **kw)
    return job


def test_upgrade_is_idempotent_and_sets_an_epoch(store: Store, db_url: str) -> None:
    epoch = store.epoch()
    again = Store(db_url)
    again.upgrade()
    assert again.epoch() == epoch and len(epoch) == 32
    again.close()


def test_transitions_are_guarded_and_terminal_is_final(store: Store) -> None:
    job = _job(store)
    with pytest.raises(Conflict, match="only a running job can be paused"):
        store.request_pause(job["id"])
    row = store.start_job(job["id"], **GRACES)
    assert row["status"] == "initializing" and row["attempt"] == 1
    with pytest.raises(Conflict):
        store.start_job(job["id"], **GRACES)
    assert store.mark_running(job["id"], 1) == "running"
    assert store.finish(job["id"], 1, "completed", exit_code=0)
    # first terminal write wins; nothing moves a terminal job
    assert not store.finish(job["id"], 1, "failed")
    assert not store.finish(job["id"], None, "lost")
    with pytest.raises(Conflict, match="already completed"):
        store.request_stop(job["id"])
    assert store.mark_running(job["id"], 1) == "gone"
    assert store.append_events(job["id"], 1, [("log", {"line": "late"})]) is None
    assert store.get_job(job["id"])["status"] == "completed"


def test_attempt_fencing(store: Store) -> None:
    job = _job(store)
    store.start_job(job["id"], **GRACES)
    assert store.append_events(job["id"], 0, [("log", {"line": "stale"})]) is None
    assert not store.heartbeat(job["id"], 2)
    assert not store.finish(job["id"], 7, "completed")
    assert store.append_events(job["id"], 1, [("log", {"line": "ok"})]) is not None
    lines = [e["data"]["line"] for e in store.events_after(job["id"]) if e["type"] == "log"]
    assert lines == ["ok"]


def test_stop_records_deadlines_and_is_idempotent(store: Store) -> None:
    job = _job(store)
    store.start_job(job["id"], **GRACES)
    before = time.time()
    assert store.request_stop(job["id"])["status"] == "stopping"
    row = store.get_row(job["id"])
    assert row["stop_requested_at"] >= before
    assert row["interrupt_at"] == pytest.approx(row["stop_requested_at"] + 0.5)
    assert row["term_at"] == pytest.approx(row["stop_requested_at"] + 3.0)
    assert row["kill_at"] == pytest.approx(row["stop_requested_at"] + 5.0)
    seq = row["last_seq"]
    assert store.request_stop(job["id"])["status"] == "stopping"  # second stop: no new events
    assert store.get_row(job["id"])["last_seq"] == seq
    assert store.get_row(job["id"])["stop_requested_at"] == row["stop_requested_at"]


def test_seqs_are_gapless_and_events_paged(store: Store) -> None:
    job = _job(store)
    store.start_job(job["id"], **GRACES)
    for i in range(10):
        store.append_events(
            job["id"], 1, [("log", {"line": f"{i}.{k}", "stream": "stdout"}) for k in range(7)]
        )
    seqs = [e["seq"] for e in store.events_after(job["id"], 0, 1000)]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 72
    page = store.events_after(job["id"], after=60, limit=5)
    assert [e["seq"] for e in page] == [61, 62, 63, 64, 65]
    only_status = store.events_after(job["id"], 0, 100, "status")
    assert [e["data"]["status"] for e in only_status] == ["pending", "initializing"]
    with pytest.raises(JobNotFound):
        store.events_after("nope")


def test_payload_caps(store: Store) -> None:
    job = _job(store)
    store.start_job(job["id"], **GRACES)
    store.append_events(job["id"], 1, [("log", {"line": "x" * (MAX_LOG_LINE * 2 + 5)})])
    store.append_events(job["id"], 1, [("metric", {"blob": "y" * 100_000})])
    evs = store.events_after(job["id"], 2)
    logs = [e for e in evs if e["type"] == "log"]
    assert [len(e["data"]["line"]) for e in logs] == [MAX_LOG_LINE, MAX_LOG_LINE, 5]
    metric = next(e for e in evs if e["type"] == "metric")
    assert metric["data"]["truncated"] is True


def test_latest_fields_are_denormalised(store: Store) -> None:
    job = _job(store)
    store.start_job(job["id"], **GRACES)
    store.append_events(job["id"], 1, [("metric", {"loss": 1.0})], {"metrics": {"loss": 1.0}})
    store.append_events(
        job["id"],
        1,
        [("metric", {"acc": 0.5})],
        {"metrics": {"acc": 0.5}, "progress_done": 3, "progress_total": 10, "progress_unit": "it"},
    )
    got = store.get_job(job["id"])
    assert got["metrics"] == {"loss": 1.0, "acc": 0.5}
    assert got["progress"]["done"] == 3 and got["progress"]["total"] == 10
    assert got["last_seq"] == 4


def test_idempotency_key(store: Store) -> None:
    a, created = store.create_job(
        "command", "n", {"argv": ["x"]}, idempotency_key="k1", body_hash="h1"
    )
    b, again = store.create_job(
        "command", "n", {"argv": ["x"]}, idempotency_key="k1", body_hash="h1"
    )
    assert created and not again and a["id"] == b["id"]
    with pytest.raises(Conflict, match="Idempotency-Key"):
        store.create_job("command", "n", {"argv": ["y"]}, idempotency_key="k1", body_hash="h2")
    jobs, _ = store.list_jobs()
    assert len(jobs) == 1


def test_list_is_keyset_paged_and_filtered(store: Store) -> None:
    ids = [_job(store, name=f"j{i}")["id"] for i in range(25)]
    store.request_stop(ids[0])
    seen, cursor = [], None
    while True:
        page, cursor = store.list_jobs(limit=10, cursor=cursor)
        seen += [j["id"] for j in page]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    cancelled, nxt = store.list_jobs(status=["cancelled"])
    assert [j["id"] for j in cancelled] == [ids[0]] and nxt is None
    assert store.list_jobs(kind="training")[0] == []
    with pytest.raises(SpecError) as err:
        store.list_jobs(cursor="garbage!")
    assert err.value.field == "cursor"


def test_delete_only_terminal_and_retention(store: Store) -> None:
    live = _job(store)
    store.start_job(live["id"], **GRACES)
    with pytest.raises(Conflict, match="stop it before deleting"):
        store.delete_job(live["id"])
    old = _job(store)
    store.request_stop(old["id"])
    assert store.delete_finished_before(time.time() + 1) == 1
    with pytest.raises(JobNotFound):
        store.get_job(old["id"])
    assert store.get_job(live["id"])["status"] == "initializing"
    assert store.count_events(old["id"]) == 0


def test_env_values_are_redacted(store: Store) -> None:
    job, _ = store.create_job("command", "n", {"argv": ["x"], "env": {"TOKEN": "secret"}})
    assert job["spec"]["env"] == {"TOKEN": "***"}
    assert json.loads(store.get_row(job["id"])["spec"])["env"] == {"TOKEN": "secret"}


# ---------------------------------------------------------------- SQLite specifics


def test_sqlite_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path / 'sub' / 'db.sqlite'}")
    s.upgrade()
    path = tmp_path / "sub" / "db.sqlite"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with s._write.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    s.close()


def test_network_filesystem_is_refused(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/export {tmp_path / 'home'} nfs4 rw 0 0\n")
    assert filesystem_type(tmp_path / "home" / "x", str(mounts)) == "nfs4"
    assert filesystem_type(tmp_path / "other", str(mounts)) == "ext4"
    with pytest.raises(StorageError, match="db_url") as err:
        Store(f"sqlite:///{tmp_path / 'home' / 'jobctl.db'}", mounts_file=str(mounts))
    assert "nfs4" in str(err.value)
    Store(f"sqlite:///{tmp_path / 'local.db'}", mounts_file=str(mounts)).close()


# ---------------------------------------------------------------- concurrency


BATCHES = 60  # per writer, of 20 events and a heartbeat


def _writer(db_url: str, job_id: str, ready: mp.Queue, go, out: mp.Queue) -> None:
    s = Store(db_url)
    errors, batches = [], 0
    try:
        s.heartbeat(job_id, 1)  # connected before the start line
    except Exception as exc:
        errors.append(repr(exc))
    ready.put(os.getpid())
    go.wait(120)
    for i in range(BATCHES):
        try:
            s.append_events(
                job_id, 1, [("log", {"line": f"{os.getpid()} {i} {k}"}) for k in range(20)]
            )
            s.heartbeat(job_id, 1)
            batches += 1
        except Exception as exc:
            errors.append(repr(exc))
    s.close()
    out.put((batches, errors))


@pytest.mark.slow
@pytest.mark.parametrize("shared_job", [False, True], ids=["job-each", "one-job"])
def test_eight_concurrent_writers(store: Store, db_url: str, shared_job: bool) -> None:
    """8 writer processes, released together, 60 batches each: no 'database is locked', no
    lost event, gapless seqs."""
    n = 8
    jobs = [_job(store)["id"] for _ in range(1 if shared_job else n)]
    for j in jobs:
        store.start_job(j, **GRACES)
    # forked from a clean server process that imported the store once (not from pytest)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["jupyter_jobctl.db.store"])
    ready: mp.Queue = ctx.Queue()
    out: mp.Queue = ctx.Queue()
    go = ctx.Event()
    procs = [
        ctx.Process(target=_writer, args=(db_url, jobs[i % len(jobs)], ready, go, out))
        for i in range(n)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    go.set()  # every writer at the start line: they all write at once
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    errors = [e for _, errs in results for e in errs]
    assert errors == []
    total_batches = sum(b for b, _ in results)
    assert total_batches == n * BATCHES
    stored = 0
    for j in jobs:
        seqs, after = [], 0
        while page := store.events_after(j, after, 1000):
            seqs += [e["seq"] for e in page]
            after = page[-1]["seq"]
        assert seqs == list(range(1, len(seqs) + 1))  # gapless, no duplicates
        assert store.get_row(j)["last_seq"] == len(seqs)
        stored += len(seqs) - 2  # minus the pending/initializing status events
    assert stored == total_batches * 20  # nothing lost


def test_terminal_states_constant() -> None:
    assert TERMINAL == {"completed", "failed", "cancelled", "lost"}
