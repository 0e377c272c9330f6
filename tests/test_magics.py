"""``%jobctl`` through a real IPython shell, and in a real kernel started by the server."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

from conftest import RealServer, wait_for
from jupyter_jobctl.kernel.client import JobctlClient
from jupyter_jobctl.kernel.widgets import MIME_TYPE
from tests.conftest import TERMINAL, ServerKernel, wait_job

SMOKE = "--mode smoke_test --batch-size 2 --lr 0.001 --optimizer adam"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def shell() -> InteractiveShell:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_jobctl")
    return ip


@pytest.fixture
def api(server_env: RealServer) -> Iterator[JobctlClient]:
    with JobctlClient(server_env.url, server_env.token) as client:
        yield client


def jobctl(shell: InteractiveShell, line: str, cell: str | None = None) -> CapturedIO:
    with capture_output() as captured:
        if cell is None:
            shell.run_line_magic("jobctl", line)
        else:
            shell.run_cell_magic("jobctl", line, cell)
    return captured


def views(captured: CapturedIO) -> list[dict]:
    return [o.data for o in captured.outputs if MIME_TYPE in o.data]


def newest(api: JobctlClient) -> dict:
    return api.list_jobs(limit=1)["jobs"][0]


def test_train_displays_the_jobs_view_with_the_config_given(
    shell: InteractiveShell, api: JobctlClient, server_env: RealServer
) -> None:
    out = jobctl(shell, f"train --name magic-train --epochs 1 {SMOKE} --lr 0.01")
    (bundle,) = views(out)
    job = api.get_job(bundle[MIME_TYPE]["job_id"])
    assert job["name"] == "magic-train" and job["kind"] == "training"
    assert bundle[WIDGET_MIME]["model_id"] and job["id"] in bundle["text/plain"]
    config = job["spec"]["config"]
    assert config["epochs"] == 1 and config["learning_rate"] == 0.01
    assert config["mode"] == "smoke_test" and config["optimizer"] == "adam"
    assert job["spec"]["target"] == "jupyter_jobctl.examples.train:main"
    assert wait_job(server_env, job["id"], *TERMINAL)["status"] == "completed"


def test_train_defaults_and_config_json(shell: InteractiveShell, api: JobctlClient) -> None:
    jobctl(shell, """train --config '{"epochs": 7, "seed": 3}' --optimizer sgd""")
    job = newest(api)
    assert job["spec"]["config"] == {
        "mode": "smoke_test",
        "epochs": 7,
        "batch_size": 2,
        "learning_rate": 0.001,
        "optimizer": "sgd",
        "seed": 3,
    }
    out = jobctl(shell, f"stop {job['id']}")
    assert f"Stop requested for job {job['id']}" in out.stdout


def test_run_argv_and_logs(shell: InteractiveShell, api: JobctlClient, server_env) -> None:
    out = jobctl(shell, f"run --name echo -- {sys.executable} -c \"print('from a job')\"")
    (bundle,) = views(out)
    job_id = bundle[MIME_TYPE]["job_id"]
    assert api.get_job(job_id)["kind"] == "command"
    wait_job(server_env, job_id, *TERMINAL)
    assert "from a job" in jobctl(shell, f"logs {job_id}").stdout.splitlines()


def test_cell_runs_as_a_job_in_the_kernels_directory(
    shell: InteractiveShell,
    api: JobctlClient,
    server_env: RealServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    cell = "import os\nprint('cwd', os.getcwd())\nprint('sum', sum(range(10)))\n"
    out = jobctl(shell, "run", cell)
    (bundle,) = views(out)
    job = api.get_job(bundle[MIME_TYPE]["job_id"])
    assert job["spec"]["argv"] == [sys.executable, "-u", "-c", cell]
    assert job["spec"]["cwd"] == str(tmp_path) and job["name"] == "cell: import os"
    assert wait_job(server_env, job["id"], *TERMINAL)["status"] == "completed"
    lines = jobctl(shell, f"logs {job['id']}").stdout.splitlines()
    assert f"cwd {tmp_path}" in lines and "sum 45" in lines


def test_notebook_magic_shows_the_jobs_view(
    shell: InteractiveShell,
    api: JobctlClient,
    server_env: RealServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    monkeypatch.chdir(tmp_path)
    nbformat.write(new_notebook(cells=[new_code_cell("print('lr', lr)")]), "exp.ipynb")
    out = jobctl(shell, "notebook exp.ipynb -p lr 0.5 --output exp-out.ipynb --name exp")
    (bundle,) = views(out)
    job = api.get_job(bundle[MIME_TYPE]["job_id"])
    assert job["kind"] == "notebook" and job["name"] == "exp"
    assert job["output_path"] == str(tmp_path / "exp-out.ipynb")
    assert wait_job(server_env, job["id"], *TERMINAL, timeout=120)["status"] == "completed"
    assert "lr 0.5" in jobctl(shell, f"logs {job['id']}").stdout.splitlines()
    assert (tmp_path / "exp-out.ipynb").exists()


def test_test_batch_in_the_notebooks_directory_then_rerun_failed(
    shell: InteractiveShell,
    api: JobctlClient,
    server_env: RealServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "test_mix.py").write_text(
        "def test_one():\n    pass\n\ndef test_two():\n    assert False, 'broken'\n"
    )
    monkeypatch.chdir(tmp_path)
    out = jobctl(shell, "test test_mix.py -q")
    (bundle,) = views(out)
    batch = api.get_job(bundle[MIME_TYPE]["job_id"])
    assert batch["kind"] == "test_batch" and batch["spec"]["cwd"] == str(tmp_path)
    assert batch["spec"]["args"] == ["test_mix.py", "-q"]
    done = wait_job(server_env, batch["id"], *TERMINAL)
    assert (done["counts"]["passed"], done["counts"]["failed"]) == (1, 1)

    (again,) = views(jobctl(shell, f"rerun {batch['id']} --failed"))
    rerun = wait_job(server_env, again[MIME_TYPE]["job_id"], *TERMINAL)
    assert rerun["counts"]["total"] == 1 and rerun["counts"]["failed"] == 1


def test_list_show_pause_resume_stop_delete(
    shell: InteractiveShell, api: JobctlClient, server_env: RealServer
) -> None:
    (bundle,) = views(jobctl(shell, f"train --name lifecycle --epochs 60 {SMOKE}"))
    job_id = bundle[MIME_TYPE]["job_id"]
    wait_job(server_env, job_id, "running")
    listing = jobctl(shell, "list --limit 5").stdout.splitlines()
    assert listing[0].split() == ["ID", "KIND", "NAME", "STATUS", "PROGRESS", "CREATED"]
    assert any(line.startswith(job_id) and "lifecycle" in line for line in listing)
    shown = jobctl(shell, f"show {job_id[:8]}").stdout
    assert f"id        {job_id}" in shown and "status    running" in shown

    assert "Pause requested" in jobctl(shell, f"pause {job_id}").stdout
    wait_job(server_env, job_id, "paused")
    assert "Resume requested" in jobctl(shell, f"resume {job_id}").stdout
    wait_job(server_env, job_id, "running")

    refused = jobctl(shell, f"delete {job_id}")
    assert "Traceback" not in refused.stderr and refused.stderr.strip()
    jobctl(shell, f"stop {job_id}")
    assert wait_job(server_env, job_id, *TERMINAL)["status"] == "cancelled"
    assert f"Deleted job {job_id}" in jobctl(shell, f"delete {job_id}").stdout


def test_attach_shows_every_active_job_or_says_there_are_none(
    shell: InteractiveShell, api: JobctlClient, server_env: RealServer
) -> None:
    jobctl(shell, "stop --all")
    wait_for(lambda: not list(api.iter_jobs(status="stopping")), 60, "stops to finish")
    out = jobctl(shell, "attach")
    assert "No active jobs or batches" in out.stdout and not views(out)

    started = [views(jobctl(shell, f"train --epochs 60 {SMOKE}"))[0] for _ in range(2)]
    ids = [b[MIME_TYPE]["job_id"] for b in started]
    out = jobctl(shell, "attach")
    assert "Attaching to 2 active job(s)" in out.stdout
    assert [b[MIME_TYPE]["job_id"] for b in views(out)] == ids
    (one,) = views(jobctl(shell, f"attach {ids[0]}"))
    assert one[MIME_TYPE] == {"job_id": ids[0]}

    out = jobctl(shell, "stop --all")
    assert "Stop requested for 2 job(s)" in out.stdout
    for job_id in ids:
        assert wait_job(server_env, job_id, *TERMINAL)["status"] == "cancelled"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("train --epochs many", "argument --epochs: invalid int value: 'many'"),
        ("train --config '[1]'", "--config must be a JSON object"),
        ("stop", "one of the arguments ID --all is required"),
        ("frobnicate", "invalid choice: 'frobnicate'"),
        ("", "choose a verb"),
        ("run", "run needs a program"),
        ("logs 'unbalanced", "cannot split the line"),
    ],
)
def test_bad_arguments_print_usage_and_one_line(
    shell: InteractiveShell, server_env: RealServer, line: str, reason: str
) -> None:
    out = jobctl(shell, line)
    assert "Traceback" not in out.stdout + out.stderr
    assert out.stderr.lstrip().startswith("usage: %jobctl")
    assert out.stderr.rstrip().splitlines()[-1] == f"%jobctl: error: {reason}" or (
        reason in out.stderr.rstrip().splitlines()[-1]
    )


def test_api_errors_print_the_servers_sentence(
    shell: InteractiveShell, api: JobctlClient, server_env: RealServer
) -> None:
    missing = "e" * 32
    out = jobctl(shell, f"show {missing}")
    assert out.stderr.strip() == f"No job with id '{missing}' exists."
    job = api.create_job("command", {"argv": [sys.executable, "-c", "pass"]}, start=True)
    wait_job(server_env, job["id"], *TERMINAL)
    out = jobctl(shell, f"stop {job['id']}")
    assert out.stderr.strip() == f"Job {job['id']} is already completed; it cannot be stopped."
    assert not out.stdout


def test_cell_with_another_verb_is_a_usage_error(shell: InteractiveShell, server_env) -> None:
    out = jobctl(shell, "list", "print(1)\n")
    assert "only %%jobctl run takes a cell" in out.stderr and "Traceback" not in out.stderr


def test_in_a_real_kernel_the_magic_finds_its_server_and_displays_the_view(
    server_kernel: ServerKernel, jobctl_server: RealServer
) -> None:
    out = server_kernel.execute(
        f"%load_ext jupyter_jobctl\n%jobctl train --name in-kernel --epochs 30 {SMOKE}"
    )
    assert out["status"] == "ok" and not out["stderr"], out
    (bundle,) = [d for d in out["displays"] if MIME_TYPE in d]
    job_id = bundle[MIME_TYPE]["job_id"]
    assert WIDGET_MIME in bundle and job_id in bundle["text/plain"]
    status, job = jobctl_server.request("GET", f"/jobs/{job_id}")
    assert status == 200 and job["name"] == "in-kernel"  # type: ignore[index]

    out = server_kernel.execute("%jobctl attach")
    attached = [d[MIME_TYPE]["job_id"] for d in out["displays"] if MIME_TYPE in d]
    assert job_id in attached
    out = server_kernel.execute(f"%jobctl stop {job_id}")
    assert f"Stop requested for job {job_id}" in out["stdout"], out
    assert wait_job(jobctl_server, job_id, *TERMINAL)["status"] == "cancelled"
    out = server_kernel.execute(f"%jobctl stop {job_id}")
    assert out["status"] == "ok" and "Traceback" not in out["stderr"]
    assert out["stderr"].strip() == f"Job {job_id} is already cancelled; it cannot be stopped."
    listing = server_kernel.execute("%jobctl --json list --limit 1")
    assert json.loads(listing["stdout"])["jobs"][0]["id"] == job_id
