"""The kernel-side API client and server discovery, against a real Jupyter server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import RealServer, wait_for
from jupyter_jobctl.kernel.client import JobctlClient, JobctlError
from jupyter_jobctl.kernel.discovery import DiscoveryError, find_server, running_servers
from tests.conftest import DISCOVERY_ENV, TERMINAL, ServerKernel, runtime_dir, wait_job

DEMO = "jupyter_jobctl.examples.train:main"


def quick_training(epochs: int = 1) -> dict:
    return {
        "target": DEMO,
        "config": {
            "mode": "smoke_test",
            "epochs": epochs,
            "batch_size": 2,
            "learning_rate": 0.001,
            "optimizer": "adam",
        },
    }


@pytest.fixture
def client(jobctl_server: RealServer) -> Iterator[JobctlClient]:
    with JobctlClient(jobctl_server.url, jobctl_server.token) as c:
        yield c


def finished_job(client: JobctlClient, server: RealServer) -> dict:
    job = client.create_job("command", {"argv": [sys.executable, "-c", "print('hi')"]}, start=True)
    return wait_job(server, job["id"], *TERMINAL)


# -- the client ----------------------------------------------------------------------------


def test_create_get_list_start_events_delete(client: JobctlClient, jobctl_server) -> None:
    job = client.create_job("training", quick_training(), name="crud", start=False)
    assert job["status"] == "pending" and job["name"] == "crud" and job["kind"] == "training"
    assert client.get_job(job["id"])["id"] == job["id"]
    assert job["id"] in [
        j["id"] for j in client.list_jobs(status="pending", kind="training")["jobs"]
    ]

    started = client.start(job["id"])
    assert started["status"] in ("initializing", "running")
    done = wait_job(jobctl_server, job["id"], *TERMINAL)
    assert done["status"] == "completed", done

    page = client.events(job["id"], after=0, limit=5)
    assert [e["seq"] for e in page["events"]] == [1, 2, 3, 4, 5] and page["next"] == 5
    everything = list(client.iter_events(job["id"]))
    assert [e["seq"] for e in everything] == list(range(1, done["last_seq"] + 1))
    logs = list(client.iter_events(job["id"], type="log"))
    assert logs and all(e["type"] == "log" for e in logs)

    client.delete(job["id"])
    with pytest.raises(JobctlError) as gone:
        client.get_job(job["id"])
    assert gone.value.status == 404


def test_unknown_job_raises_the_servers_sentence(client: JobctlClient) -> None:
    missing = "0" * 32
    with pytest.raises(JobctlError) as err:
        client.get_job(missing)
    assert err.value.status == 404
    assert str(err.value) == f"No job with id '{missing}' exists."
    with pytest.raises(JobctlError) as err:
        client.stop(missing)
    assert err.value.status == 404


def test_stop_of_a_completed_job_is_409_naming_its_state(
    client: JobctlClient, jobctl_server
) -> None:
    job = finished_job(client, jobctl_server)
    assert job["status"] == "completed"
    with pytest.raises(JobctlError) as err:
        client.stop(job["id"])
    assert err.value.status == 409 and err.value.state == "completed"
    assert str(err.value) == f"Job {job['id']} is already completed; it cannot be stopped."


def test_bad_spec_is_400_naming_the_field(client: JobctlClient) -> None:
    spec = quick_training()
    spec["config"]["epochs"] = 0
    with pytest.raises(JobctlError) as err:
        client.create_job("training", spec)
    assert err.value.status == 400 and err.value.field == "spec.config.epochs"
    assert "epochs" in str(err.value)


def test_idempotency_key_returns_the_same_job(client: JobctlClient) -> None:
    key = os.urandom(8).hex()
    first = client.create_job("training", quick_training(), start=False, idempotency_key=key)
    again = client.create_job("training", quick_training(), start=False, idempotency_key=key)
    assert again["id"] == first["id"]
    client.stop(first["id"])  # pending -> cancelled at once


def test_iter_jobs_follows_pages(client: JobctlClient) -> None:
    made = {client.create_job("training", quick_training(), start=False)["id"] for _ in range(3)}
    seen = [j["id"] for j in client.iter_jobs(status="pending", page_size=1)]
    assert made <= set(seen) and len(seen) == len(set(seen))
    for job_id in made:
        assert client.stop(job_id)["status"] == "cancelled"
    assert client.resolve_id(next(iter(made))[:10]) in made


def test_stop_pause_resume_rerun(client: JobctlClient, jobctl_server) -> None:
    job = client.create_job("training", quick_training(epochs=60), name="long", start=True)
    wait_job(jobctl_server, job["id"], "running")
    assert client.pause(job["id"])["status"] in ("running", "paused")
    wait_job(jobctl_server, job["id"], "paused")
    assert client.resume(job["id"])["status"] in ("running", "paused")
    wait_job(jobctl_server, job["id"], "running")
    assert client.stop(job["id"])["status"] == "stopping"
    assert wait_job(jobctl_server, job["id"], *TERMINAL)["status"] == "cancelled"
    again = client.rerun(job["id"])
    assert again["id"] != job["id"] and again["spec"] == job["spec"]
    client.stop(again["id"])
    wait_job(jobctl_server, again["id"], *TERMINAL)


def test_follow_streams_every_event_once_then_done(client: JobctlClient) -> None:
    job = client.create_job("training", quick_training(epochs=2), start=True)
    frames = list(client.follow(job["id"]))
    assert frames[0]["type"] == "snapshot" and frames[-1]["type"] == "done"
    assert frames[-1]["status"] == "completed"
    seqs = [f["seq"] for f in frames if f["type"] == "event"]
    assert seqs == list(range(1, len(seqs) + 1))
    assert seqs[-1] == client.get_job(job["id"])["last_seq"]
    # resuming from a seq: nothing at or before it again
    later = [f["seq"] for f in client.follow(job["id"], after=seqs[3]) if f["type"] == "event"]
    assert later == seqs[4:]


def test_follow_resumes_across_a_server_restart_with_no_gap(real_server) -> None:
    first = real_server()
    client = JobctlClient(first.url, first.token)
    job = client.create_job("training", quick_training(epochs=6), start=True)
    frames: list[dict] = []
    reconnects: list[JobctlError] = []

    def consume() -> None:
        for frame in client.follow(job["id"], on_reconnect=reconnects.append):
            frames.append(frame)

    follower = threading.Thread(target=consume, daemon=True)
    follower.start()
    wait_for(lambda: any(f["type"] == "event" for f in frames), 60, "the first events")
    first.kill()
    # the same URL and token again, as after a restart of the user's server
    real_server(port=first.port, options=[f"--IdentityProvider.token={first.token}"])
    follower.join(120)
    assert not follower.is_alive() and reconnects
    assert frames[-1]["type"] == "done" and frames[-1]["status"] == "completed"
    seqs = [f["seq"] for f in frames if f["type"] == "event"]
    assert seqs == list(range(1, frames[-1]["last_seq"] + 1))


def test_follow_of_an_unknown_job_raises_404(client: JobctlClient) -> None:
    with pytest.raises(JobctlError) as err:
        next(client.follow("f" * 32))
    assert err.value.status == 404 and "No job with id" in str(err.value)


def test_active_batches_and_results(client: JobctlClient, jobctl_server, tmp_path: Path) -> None:
    (tmp_path / "test_pair.py").write_text(
        "import time\n\ndef test_ok():\n    time.sleep(1)\n\ndef test_bad():\n    assert 1 == 2\n"
    )
    batch = client.create_job(
        "test_batch", {"args": ["test_pair.py"], "cwd": str(tmp_path)}, start=True
    )
    wait_for(
        lambda: (
            any(b["batch_id"] == batch["id"] for b in client.active_batches())
            or client.get_job(batch["id"])["status"] in TERMINAL
        ),
        60,
        "the batch to be active",
    )
    done = wait_job(jobctl_server, batch["id"], *TERMINAL)
    assert done["counts"]["passed"] == 1 and done["counts"]["failed"] == 1
    failed = client.results(batch["id"], outcome="failed")["results"]
    assert [r["nodeid"] for r in failed] == ["test_pair.py::test_bad"]
    rerun = client.rerun(batch["id"], only="failed")
    assert wait_job(jobctl_server, rerun["id"], *TERMINAL)["counts"]["total"] == 1


def test_wrong_token_says_which_server_refused(jobctl_server: RealServer) -> None:
    with pytest.raises(JobctlError) as err:
        JobctlClient(jobctl_server.url, "not-the-token").list_jobs()
    assert err.value.status == 403
    assert jobctl_server.url in str(err.value) and "JOBCTL_TOKEN" in str(err.value)


def test_unreachable_server_names_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    with pytest.raises(JobctlError) as err:
        JobctlClient(url, "t").health()
    assert err.value.status is None and url in str(err.value)
    with pytest.raises(JobctlError) as err:
        next(JobctlClient(url, "t").follow("a" * 32, reconnect=False))
    assert url in str(err.value)


def test_health_needs_no_token(jobctl_server: RealServer) -> None:
    assert JobctlClient(jobctl_server.url, "").health()["status"] == "ok"


def test_url_with_token_query_and_lab_path(jobctl_server: RealServer) -> None:
    c = JobctlClient(f"{jobctl_server.url}/lab?token={jobctl_server.token}")
    assert c.url == jobctl_server.url + "/" and c.token == jobctl_server.token
    assert "jobs" in c.list_jobs(limit=1)


# -- discovery -----------------------------------------------------------------------------


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DISCOVERY_ENV}
    env.update(extra)
    return env


DISCOVER = (
    "import json; from jupyter_jobctl.kernel.discovery import find_server; "
    "from jupyter_jobctl.kernel.client import JobctlClient; s = find_server(); "
    "n = len(JobctlClient(s.url, s.token).list_jobs(limit=1)['jobs']); "
    "print(json.dumps({'url': s.url, 'token': s.token, 'source': s.source, 'n': n}))"
)


def _discover_in_subprocess(env: dict[str, str], *argv: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", DISCOVER, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_subprocess_with_jpy_parent_pid_finds_its_server(jobctl_server: RealServer) -> None:
    found = _discover_in_subprocess(
        _clean_env(
            JPY_PARENT_PID=str(jobctl_server.proc.pid),
            JUPYTER_RUNTIME_DIR=str(runtime_dir(jobctl_server)),
        )
    )
    assert found["url"] == jobctl_server.url + "/" and found["token"] == jobctl_server.token
    assert found["source"] == "JPY_PARENT_PID"


def test_a_kernel_started_by_the_server_finds_it_by_ancestry(
    server_kernel: ServerKernel, jobctl_server: RealServer
) -> None:
    out = server_kernel.execute(
        "import os\n" + DISCOVER.replace("; ", "\n") + "\nprint(os.environ['JPY_PARENT_PID'])"
    )
    assert out["status"] == "ok", out
    found = json.loads(out["stdout"].splitlines()[0])
    assert found["url"] == jobctl_server.url + "/" and found["token"] == jobctl_server.token
    assert found["source"] == "ancestor"
    assert out["stdout"].splitlines()[1] == str(jobctl_server.proc.pid)


@pytest.fixture
def decoy_pid() -> Iterator[int]:
    """A live process that is no ancestor of anything here: the pid of a second 'server'."""
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def _runtime_with_decoy(server: RealServer, tmp_path: Path, pid: int) -> Path:
    """A runtime dir listing the test server and a second, unrelated live server."""
    folder = tmp_path / "runtime"
    folder.mkdir()
    (own,) = runtime_dir(server).glob(f"jpserver-{server.proc.pid}.json")
    shutil.copy(own, folder / own.name)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    decoy = {"pid": pid, "url": f"http://127.0.0.1:{port}/", "token": "decoy", "port": port}
    (folder / f"jpserver-{pid}.json").write_text(json.dumps(decoy))
    return folder


def test_kernel_id_lookup_picks_the_server_running_the_kernel(
    server_kernel: ServerKernel, jobctl_server: RealServer, tmp_path: Path, decoy_pid: int
) -> None:
    folder = _runtime_with_decoy(jobctl_server, tmp_path, decoy_pid)
    found = _discover_in_subprocess(
        _clean_env(JUPYTER_RUNTIME_DIR=str(folder)),
        "-f",
        str(folder / f"kernel-{server_kernel.id}.json"),
    )
    assert found["source"] == "kernel id" and found["url"] == jobctl_server.url + "/"


def test_two_servers_and_no_clue_ask_to_choose(
    jobctl_server: RealServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decoy_pid: int
) -> None:
    folder = _runtime_with_decoy(jobctl_server, tmp_path, decoy_pid)
    for name in DISCOVERY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(folder))
    monkeypatch.setattr(sys, "argv", ["pytest"])
    assert len(running_servers()) == 2
    with pytest.raises(DiscoveryError) as err:
        find_server()
    assert "2 Jupyter servers are running" in str(err.value) and "JOBCTL_URL" in str(err.value)


def test_the_only_running_server_is_used(
    jobctl_server: RealServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in DISCOVERY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime_dir(jobctl_server)))
    monkeypatch.setattr(sys, "argv", ["pytest"])
    found = find_server()
    assert found.source == "only server" and found.pid == jobctl_server.proc.pid
    assert found.url == jobctl_server.url + "/" and found.token == jobctl_server.token


def test_env_and_arguments_win(jobctl_server: RealServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBCTL_URL", "http://example.invalid:1/")
    monkeypatch.setenv("JOBCTL_TOKEN", "from-env")
    assert find_server().url == "http://example.invalid:1/"
    assert find_server().token == "from-env" and find_server().source == "JOBCTL_URL"
    explicit = find_server(jobctl_server.url, "given")
    assert explicit.url == jobctl_server.url + "/" and explicit.token == "given"
    # a URL alone takes the token of the running server at that URL
    monkeypatch.delenv("JOBCTL_TOKEN")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime_dir(jobctl_server)))
    assert find_server(jobctl_server.url).token == jobctl_server.token


def _fake_server_file(folder: Path, token: str) -> None:
    folder.mkdir(exist_ok=True)
    info = {"pid": os.getpid(), "url": "http://127.0.0.1:9/", "token": token, "port": 9}
    (folder / f"jpserver-{os.getpid()}.json").write_text(json.dumps(info))


def test_password_only_server_asks_for_jobctl_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in DISCOVERY_ENV:
        monkeypatch.delenv(name, raising=False)
    _fake_server_file(tmp_path / "runtime", token="")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    with pytest.raises(DiscoveryError) as err:
        find_server()
    assert "password" in str(err.value) and "JOBCTL_TOKEN" in str(err.value)


def test_under_jupyterhub_the_hub_token_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in DISCOVERY_ENV:
        monkeypatch.delenv(name, raising=False)
    _fake_server_file(tmp_path / "runtime", token="")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token")
    assert find_server().token == "hub-token"


def test_no_server_is_a_clear_sentence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DISCOVERY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    with pytest.raises(DiscoveryError) as err:
        find_server()
    assert str(err.value).startswith("No running Jupyter server was found")
    assert "JOBCTL_URL" in str(err.value)
