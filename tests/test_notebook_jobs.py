"""Notebooks run as jobs (issue 15) through a real Jupyter server: each in a kernel of its
own, with per-cell progress, logs, metrics from the runtime API, an executed copy written as
it goes, the stop ladder reaching the kernel, and clear errors for bad requests."""

from __future__ import annotations

import glob
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from conftest import TERMINAL, RealServer, wait_for
from jupyter_jobctl.core import notebooks
from jupyter_jobctl.procs.notebook import inject_parameters
from jupyter_jobctl.procs.processes import job_processes

TRAIN_CELLS = [
    new_markdown_cell("# A training notebook"),
    new_code_cell("epochs = 2\nlearning_rate = 0.1", metadata={"tags": ["parameters"]}),
    new_code_cell(
        "from jupyter_jobctl import runtime as jc\n"
        "job = jc.current()\n"
        "for epoch in job.progress(range(epochs), unit='epoch'):\n"
        "    job.metric(step=epoch, loss=learning_rate / (epoch + 1))\n"
        "print('config', sorted(job.config.items()))"
    ),
    new_code_cell(
        "import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.1)\n"
        "'finished'"
    ),
]


def write_notebook(folder: Path, name: str, cells: list[Any]) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    path = folder / name
    nbformat.write(nb, path)
    return path


def events(server: RealServer, job_id: str) -> list[dict[str, Any]]:
    status, page = server.request("GET", f"/jobs/{job_id}/events?after=0&limit=1000")
    assert status == 200, page
    return page["events"]


def logs(server: RealServer, job_id: str) -> list[str]:
    return [e["data"]["line"] for e in events(server, job_id) if e["type"] == "log"]


def create(server: RealServer, spec: dict[str, Any]) -> dict[str, Any]:
    status, job = server.request("POST", "/jobs", {"kind": "notebook", "spec": spec, "start": True})
    assert status == 201, job
    return job


def finished(server: RealServer, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status, job = server.request("GET", f"/jobs/{job_id}")
        assert status == 200, job
        return job if job["status"] in TERMINAL else None

    return wait_for(done, timeout, f"notebook job {job_id} to end")


def test_notebook_job_reports_cells_logs_metrics_and_keeps_an_executed_copy(
    real_server: Callable[..., RealServer], tmp_path: Path
) -> None:
    server = real_server()
    write_notebook(tmp_path, "train.ipynb", TRAIN_CELLS)
    job = create(server, {"path": "train.ipynb", "parameters": {"epochs": 3, "learning_rate": 0.5}})
    assert job["name"] == "train.ipynb"
    job = finished(server, job["id"])
    assert job["status"] == "completed", job

    evs = events(server, job["id"])
    cells = [e["data"] for e in evs if e["type"] == "progress" and e["data"]["unit"] == "cell"]
    # 4 code cells: the notebook's 3 and the injected parameters; one progress per cell
    # (and once more at the end: the kernel's own progress may have come after the last)
    assert [p["done"] for p in cells] == [0, 1, 2, 3, 4, 4]
    assert {p["total"] for p in cells} == {4}
    lines = logs(server, job["id"])
    assert "config [('epochs', 3), ('learning_rate', 0.5)]" in lines
    assert ["tick 0", "tick 1", "tick 2"] == [ln for ln in lines if ln.startswith("tick")]
    assert "'finished'" in lines  # an execute_result's text
    assert [f"[CELL {n}/4]" for n in range(1, 5)] == [ln for ln in lines if ln.startswith("[CELL")]
    metrics = [e["data"] for e in evs if e["type"] == "metric"]
    assert metrics == [{"step": s, "loss": 0.5 / (s + 1)} for s in range(3)]
    assert job["metrics"] == {"loss": 0.5 / 3}
    # the notebook's own epoch progress came in between; the job ends showing its cells
    assert any(e["data"]["unit"] == "epoch" for e in evs if e["type"] == "progress")
    assert (job["progress"]["done"], job["progress"]["total"], job["progress"]["unit"]) == (
        4,
        4,
        "cell",
    )

    # the executed copy: beside the input, named after the job, with outputs and parameters
    out = Path(job["output_path"])
    assert out == tmp_path / f"train.{job['id'][:8]}.ipynb"
    copy = nbformat.read(out, as_version=4)
    assert copy.metadata["jobctl"]["status"] == "completed"
    assert copy.metadata["jobctl"]["parameters"] == {"epochs": 3, "learning_rate": 0.5}
    injected = copy.cells[2]
    assert injected.metadata["tags"] == ["injected-parameters"]
    assert "epochs = 3" in injected.source and "learning_rate = 0.5" in injected.source
    streams = [o["text"] for o in copy.cells[4].outputs if o["output_type"] == "stream"]
    assert "".join(streams) == "tick 0\ntick 1\ntick 2\n"
    assert copy.cells[4].outputs[-1]["data"]["text/plain"] == "'finished'"
    # the input is untouched
    original = nbformat.read(tmp_path / "train.ipynb", as_version=4)
    assert len(original.cells) == len(TRAIN_CELLS) and not original.cells[2].outputs
    assert job_processes(job["id"]) == []


def test_stop_during_a_sleeping_cell_interrupts_the_kernel_and_leaves_nothing(
    real_server: Callable[..., RealServer], tmp_path: Path
) -> None:
    server = real_server()
    write_notebook(
        tmp_path,
        "sleepy.ipynb",
        [
            new_code_cell("print('before')"),
            # a child of the kernel too: the stop must end it with the kernel
            new_code_cell(
                "import subprocess, time\nchild = subprocess.Popen(['sleep', '600'])\n"
                "time.sleep(60)"
            ),
            new_code_cell("print('never')"),
        ],
    )
    job = create(server, {"path": "sleepy.ipynb", "output_path": "copy.ipynb"})
    wait_for(lambda: "[CELL 2/3]" in logs(server, job["id"]), 60, "the sleeping cell")
    wait_for(lambda: len(job_processes(job["id"])) >= 3, 30, "worker, kernel and child")
    status, _ = server.request("POST", f"/jobs/{job['id']}/stop")
    assert status == 202
    job = finished(server, job["id"], timeout=60)
    assert job["status"] == "cancelled", job
    lines = logs(server, job["id"])
    assert "[CANCELLATION] interrupting the notebook's kernel" in lines
    assert "[CANCELLATION] stopped in cell 2 (KeyboardInterrupt)" in lines
    assert "never" not in lines
    assert wait_for(lambda: job_processes(job["id"]) == [], 30, "no process of the job left")
    copy = nbformat.read(tmp_path / "copy.ipynb", as_version=4)
    assert copy.metadata["jobctl"]["status"] == "cancelled"
    assert copy.cells[0].outputs[0]["text"] == "before\n"
    assert copy.cells[1].outputs[-1]["ename"] == "KeyboardInterrupt"
    assert not copy.cells[2].outputs


def test_a_killed_notebook_worker_leaves_no_kernel_and_no_scratch_folder(
    real_server: Callable[..., RealServer], tmp_path: Path
) -> None:
    """SIGKILL gives the worker no chance to clean up: its supervisor does."""
    from jupyter_jobctl.db.store import Store

    server = real_server()
    write_notebook(tmp_path, "sleepy.ipynb", [new_code_cell("import time\ntime.sleep(60)")])
    job = create(server, {"path": "sleepy.ipynb"})
    wait_for(lambda: "[CELL 1/1]" in logs(server, job["id"]), 60, "the sleeping cell")

    def scratch_dirs() -> list[str]:
        return glob.glob(os.path.join(tempfile.gettempdir(), f"jobctl-{job['id'][:12]}-*"))

    assert len(scratch_dirs()) == 1  # the kernel's sockets
    store = Store(server.db_url)
    try:
        worker_pid = store.get_row(job["id"])["worker_pid"]
    finally:
        store.close()
    os.kill(worker_pid, signal.SIGKILL)
    job = finished(server, job["id"], timeout=60)
    assert job["status"] == "failed" and "SIGKILL" in job["reason"], job
    assert wait_for(lambda: job_processes(job["id"]) == [], 30, "no process of the job left")
    assert scratch_dirs() == []


def test_a_notebook_that_checkpoints_stops_cooperatively(
    real_server: Callable[..., RealServer], tmp_path: Path
) -> None:
    server = real_server(options=["--JobCtl.interrupt_after=30"])  # no SIGINT rung in reach
    write_notebook(
        tmp_path,
        "loop.ipynb",
        [
            new_code_cell(
                "import time\nfrom jupyter_jobctl import runtime as jc\njob = jc.current()\n"
                "for step in job.progress(range(100000), unit='step'):\n    time.sleep(0.01)"
            )
        ],
    )
    job = create(server, {"path": "loop.ipynb"})
    wait_for(
        lambda: any(
            e["type"] == "progress" and e["data"]["unit"] == "step" and e["data"]["done"] > 5
            for e in events(server, job["id"])
        ),
        60,
        "the loop to report steps",
    )
    server.request("POST", f"/jobs/{job['id']}/stop")
    job = finished(server, job["id"], timeout=25)  # well inside interrupt_after
    assert job["status"] == "cancelled", job
    lines = logs(server, job["id"])
    assert "[CANCELLATION] stopped in cell 1 (Cancelled)" in lines
    assert not any("SIGINT" in line for line in lines)


def test_a_failing_cell_fails_the_job_naming_the_cell_and_exception(
    real_server: Callable[..., RealServer], tmp_path: Path
) -> None:
    server = real_server()
    write_notebook(
        tmp_path,
        "boom.ipynb",
        [new_code_cell("x = 1"), new_code_cell("x / 0"), new_code_cell("print('never')")],
    )
    job = finished(server, create(server, {"path": "boom.ipynb"})["id"])
    assert job["status"] == "failed"
    assert job["reason"].startswith("Cell 2 of 3 raised ZeroDivisionError: division by zero")
    assert "ZeroDivisionError: division by zero" in logs(server, job["id"])
    copy = nbformat.read(job["output_path"], as_version=4)
    assert copy.metadata["jobctl"]["status"] == "failed"
    assert copy.cells[1].outputs[-1]["ename"] == "ZeroDivisionError"


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({}, "spec.path", "required"),
        ({"path": "nothing.ipynb"}, "spec.path", "there is no notebook"),
        ({"path": "notes.txt"}, "spec.path", "ending in .ipynb"),
        ({"path": "../outside.ipynb"}, "spec.path", "leads out of the server's root"),
        ({"path": "fake.ipynb"}, "spec.path", "not a notebook"),
        ({"path": "ok.ipynb", "parameters": [1]}, "spec.parameters", "must be an object"),
        ({"path": "ok.ipynb", "parameters": {"1x": 1}}, "spec.parameters.1x", "not a valid"),
        ({"path": "ok.ipynb", "parameters": {"class": 1}}, "spec.parameters.class", "not a valid"),
        ({"path": "ok.ipynb", "kernel": "no kernel!"}, "spec.kernel", "installed Jupyter kernel"),
        ({"path": "ok.ipynb", "output_path": "ok.ipynb"}, "spec.output_path", "must differ"),
        ({"path": "ok.ipynb", "output_path": "no/dir/x.ipynb"}, "spec.output_path", "not exist"),
        ({"path": "ok.ipynb", "cells": 3}, "spec.cells", "not a known field"),
    ],
)
def test_bad_notebook_requests_get_a_400_naming_the_field(
    real_server: Callable[..., RealServer], tmp_path: Path, spec: dict, field: str, words: str
) -> None:
    server = real_server()
    write_notebook(tmp_path, "ok.ipynb", [new_code_cell("1")])
    (tmp_path / "notes.txt").write_text("not a notebook")
    (tmp_path / "fake.ipynb").write_text('{"just": "json"}')
    status, body = server.request("POST", "/jobs", {"kind": "notebook", "spec": spec})
    assert status == 400, body
    assert body["field"] == field and words in body["error"], body
    assert server.request("GET", "/jobs")[1]["jobs"] == []  # nothing half-written


def test_parameters_follow_papermills_convention() -> None:
    nb = new_notebook(
        cells=[
            new_code_cell("import os"),
            new_code_cell("a = 1", metadata={"tags": ["parameters"]}),
            new_code_cell("# Parameters\na = 0", metadata={"tags": ["injected-parameters"]}),
            new_code_cell("print(a)"),
        ]
    )
    inject_parameters(nb, {"a": 2, "name": "it's", "flags": [True, None], "cfg": {"k": 1.5}})
    tags = [c.metadata.get("tags") for c in nb.cells]
    assert tags == [None, ["parameters"], ["injected-parameters"], None]  # replaced, not added
    namespace: dict[str, Any] = {}
    exec(nb.cells[2].source, namespace)  # the injected cell is Python giving back the values
    assert {k: namespace[k] for k in ("a", "name", "flags", "cfg")} == {
        "a": 2,
        "name": "it's",
        "flags": [True, None],
        "cfg": {"k": 1.5},
    }
    plain = new_notebook(cells=[new_code_cell("print(a)")])
    inject_parameters(plain, {"a": 1})
    assert plain.cells[0].metadata["tags"] == ["injected-parameters"]  # first, with no defaults
    assert notebooks.output_path({"path": "/x/t.ipynb"}, "abcdef0123") == "/x/t.abcdef01.ipynb"
