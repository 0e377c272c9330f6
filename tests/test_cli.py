"""``jupyter jobctl`` as a subprocess against a real server: verbs, exit codes, --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import RealServer
from tests.conftest import DISCOVERY_ENV, TERMINAL, runtime_dir, wait_job

SMOKE = ["--mode", "smoke_test", "--batch-size", "2", "--lr", "0.001", "--optimizer", "adam"]
JUPYTER = Path(sys.executable).with_name("jupyter")


def cli(
    server: RealServer | None,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m jupyter_jobctl.cli ARGS`` with the test server in JOBCTL_URL/JOBCTL_TOKEN."""
    base = {k: v for k, v in os.environ.items() if k not in DISCOVERY_ENV}
    if server is not None:
        base.update(JOBCTL_URL=server.url, JOBCTL_TOKEN=server.token)
    return subprocess.run(
        [sys.executable, "-m", "jupyter_jobctl.cli", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def started_id(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["id"]


def test_jupyter_jobctl_is_a_jupyter_subcommand(jobctl_server: RealServer) -> None:
    env = {k: v for k, v in os.environ.items() if k not in DISCOVERY_ENV}
    env.update(JOBCTL_URL=jobctl_server.url, JOBCTL_TOKEN=jobctl_server.token)
    env["PATH"] = f"{JUPYTER.parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [str(JUPYTER), "jobctl", "list", "--limit", "1"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    helped = subprocess.run([str(JUPYTER), "jobctl", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "usage: jupyter jobctl" in helped.stdout


def test_train_then_the_job_is_listed_and_shown(jobctl_server: RealServer) -> None:
    result = cli(jobctl_server, "train", "--name", "cli-train", "--epochs", "1", *SMOKE)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("Started training job ") and "'cli-train'" in line
    job_id = line.split()[3]
    listing = cli(jobctl_server, "list", "--kind", "training").stdout.splitlines()
    assert listing[0].split() == ["ID", "KIND", "NAME", "STATUS", "PROGRESS", "CREATED"]
    (row,) = [r for r in listing if r.startswith(job_id)]
    assert row.split()[1:3] == ["training", "cli-train"]
    wait_job(jobctl_server, job_id, *TERMINAL)
    shown = cli(jobctl_server, "show", job_id)
    assert shown.returncode == 0 and "status    completed" in shown.stdout
    assert "1/1 epoch" in cli(jobctl_server, "list").stdout


def test_json_output_is_the_apis_objects(jobctl_server: RealServer) -> None:
    job_id = started_id(cli(jobctl_server, "--json", "train", "--epochs", "1", *SMOKE))
    wait_job(jobctl_server, job_id, *TERMINAL)
    page = json.loads(cli(jobctl_server, "list", "--json", "--limit", "3").stdout)
    assert set(page) == {"jobs", "next"} and job_id in [j["id"] for j in page["jobs"]]
    shown = json.loads(cli(jobctl_server, "show", job_id, "--json").stdout)
    status, api_job = jobctl_server.request("GET", f"/jobs/{job_id}")
    assert status == 200 and shown == api_job
    events = [
        json.loads(x) for x in cli(jobctl_server, "--json", "logs", job_id).stdout.split("\n") if x
    ]
    assert events and all(set(e) == {"seq", "type", "ts", "data"} for e in events)
    assert all(e["type"] == "log" for e in events)
    deleted = json.loads(cli(jobctl_server, "--json", "delete", job_id).stdout)
    assert deleted == {"id": job_id, "deleted": True}


def test_stop_of_a_completed_job_exits_1_with_the_servers_sentence(
    jobctl_server: RealServer,
) -> None:
    job_id = started_id(cli(jobctl_server, "--json", "run", "--", sys.executable, "-c", "pass"))
    wait_job(jobctl_server, job_id, *TERMINAL)
    result = cli(jobctl_server, "stop", job_id)
    assert result.returncode == 1 and not result.stdout
    assert result.stderr == f"Job {job_id} is already completed; it cannot be stopped.\n"


def test_unknown_id_exits_1(jobctl_server: RealServer) -> None:
    missing = "d" * 32
    for verb in ("show", "stop", "logs", "delete", "pause"):
        result = cli(jobctl_server, verb, missing)
        assert result.returncode == 1, (verb, result)
        assert result.stderr == f"No job with id '{missing}' exists.\n"


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--epochs", "many"],
        ["train", "--no-such-flag"],
        ["stop"],
        ["stop", "a" * 32, "--all"],
        ["logs"],
        ["attach"],  # a notebook's verb
        ["run"],
        [],
    ],
)
def test_bad_flags_exit_2_with_usage(jobctl_server: RealServer, args: list[str]) -> None:
    result = cli(jobctl_server, *args)
    assert result.returncode == 2, result
    assert result.stderr.startswith("usage: jupyter jobctl")
    assert result.stderr.rstrip().splitlines()[-1].startswith("jupyter jobctl: error: ")
    assert "Traceback" not in result.stderr and not result.stdout


def test_logs_follow_ends_when_the_job_ends(jobctl_server: RealServer) -> None:
    job_id = started_id(cli(jobctl_server, "--json", "train", "--epochs", "2", *SMOKE))
    followed = cli(jobctl_server, "logs", job_id, "--follow", timeout=120)
    assert followed.returncode == 0, followed.stderr
    assert followed.stderr.strip().endswith(f"Job {job_id} ended: completed")
    assert jobctl_server.request("GET", f"/jobs/{job_id}")[1]["status"] == "completed"  # type: ignore[index]
    assert followed.stdout.splitlines() == cli(jobctl_server, "logs", job_id).stdout.splitlines()
    assert any("epoch" in line for line in followed.stdout.splitlines())


def test_run_pause_resume_stop(jobctl_server: RealServer, tmp_path: Path) -> None:
    (tmp_path / "tick.py").write_text(
        "import time\nfor i in range(600):\n    print('tick', i, flush=True)\n    time.sleep(0.1)\n"
    )
    result = cli(jobctl_server, "run", "--name", "ticker", sys.executable, "tick.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.split()[3]
    job = wait_job(jobctl_server, job_id, "running")
    assert job["spec"]["argv"] == [sys.executable, "tick.py"] and job["spec"]["cwd"] == str(
        tmp_path
    )
    assert cli(jobctl_server, "pause", job_id).stdout.startswith(
        f"Pause requested for job {job_id}"
    )
    wait_job(jobctl_server, job_id, "paused")
    assert cli(jobctl_server, "resume", job_id[:12]).returncode == 0
    wait_job(jobctl_server, job_id, "running")
    stopped = cli(jobctl_server, "stop", job_id)
    assert stopped.returncode == 0 and stopped.stdout.startswith("Stop requested")
    assert wait_job(jobctl_server, job_id, *TERMINAL)["status"] == "cancelled"


def test_test_batch_and_rerun_failed(jobctl_server: RealServer, tmp_path: Path) -> None:
    (tmp_path / "test_cli_pair.py").write_text(
        "def test_fine():\n    pass\n\ndef test_wrong():\n    assert 0\n"
    )
    batch_id = started_id(
        cli(jobctl_server, "--json", "test", "-q", "test_cli_pair.py", cwd=tmp_path)
    )
    batch = wait_job(jobctl_server, batch_id, *TERMINAL)
    assert batch["spec"]["args"] == ["-q", "test_cli_pair.py"]
    assert batch["counts"]["failed"] == 1 and batch["counts"]["passed"] == 1
    assert "(1 failed)" in cli(jobctl_server, "list", "--kind", "test_batch").stdout
    rerun_id = started_id(cli(jobctl_server, "--json", "rerun", batch_id, "--failed"))
    rerun = wait_job(jobctl_server, rerun_id, *TERMINAL)
    assert rerun["counts"]["total"] == 1 and rerun["counts"]["failed"] == 1


def test_url_and_token_flags(jobctl_server: RealServer) -> None:
    result = cli(None, "--url", jobctl_server.url, "--token", jobctl_server.token, "list")
    assert result.returncode == 0, result.stderr
    wrong = cli(None, "list", "--url", jobctl_server.url, "--token", "wrong")
    assert wrong.returncode == 1 and "JOBCTL_TOKEN" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1


def test_server_found_from_the_runtime_dir(jobctl_server: RealServer) -> None:
    result = cli(None, "list", env={"JUPYTER_RUNTIME_DIR": str(runtime_dir(jobctl_server))})
    assert result.returncode == 0, result.stderr


def test_no_server_exits_1_with_a_sentence(tmp_path: Path) -> None:
    result = cli(None, "list", env={"JUPYTER_RUNTIME_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.startswith("No running Jupyter server was found")
    assert len(result.stderr.strip().splitlines()) == 1


def test_notebook_runs_with_parameters_from_the_current_folder(
    jobctl_server: RealServer, tmp_path: Path
) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(
        cells=[
            new_code_cell("n = 1\nwho = 'nobody'", metadata={"tags": ["parameters"]}),
            new_code_cell("print('n', n * 2, 'who', who)"),
        ]
    )
    nbformat.write(nb, tmp_path / "params.ipynb")
    result = cli(
        jobctl_server,
        "notebook", "params.ipynb", "-p", "n", "21", "-p", "who", "world", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    job_id = started_id(result)
    job = wait_job(jobctl_server, job_id, *TERMINAL, timeout=120)
    assert job["status"] == "completed", job
    assert job["spec"]["path"] == str(tmp_path / "params.ipynb")
    assert job["spec"]["parameters"] == {"n": 21, "who": "world"}  # JSON when JSON, else text
    assert "n 42 who world" in cli(jobctl_server, "logs", job_id).stdout
    shown = cli(jobctl_server, "show", job_id).stdout
    assert f"executed copy  {tmp_path / ('params.' + job_id[:8] + '.ipynb')}" in shown
    bad = cli(jobctl_server, "notebook", "params.ipynb", "-p", "2x", "1", cwd=tmp_path)
    assert bad.returncode == 1 and "'2x' is not a valid parameter name" in bad.stderr
