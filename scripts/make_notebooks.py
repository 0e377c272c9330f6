"""Writes the example notebooks in notebooks/, executed against a real server, with outputs.

Run `python scripts/make_notebooks.py` after changing a cell here (or the magics' output);
`make test` runs the saved notebooks with nbval (tests/test_notebooks.py), which compares
the cells marked `# NBVAL_CHECK_OUTPUT` with what is saved.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
SMOKE = "--mode smoke_test --batch-size 2 --lr 0.001 --optimizer adam"

WAIT_FOR_END = """\
def wait_for_end(job_id, timeout=120):
    \"\"\"Poll the job until it has ended; returns it.\"\"\"
    deadline = time.monotonic() + timeout
    ended = ("completed", "failed", "cancelled", "lost")
    while (job := client.get_job(job_id))["status"] not in ended:
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']}")
        time.sleep(0.2)
    return job"""

QUICKSTART = [
    (
        "markdown",
        "# Quick start: train, watch, stop\n\n"
        "`jupyter_jobctl` runs trainings and test suites **out of this kernel**, as supervised "
        "processes of the Jupyter server. The view a cell shows is live: state, progress with "
        "rate and ETA, metric curves, logs and a **Stop** button. It talks to the server, not "
        "to the kernel, so it keeps updating when the kernel restarts or the page reloads.",
    ),
    ("code", "%load_ext jupyter_jobctl"),
    (
        "markdown",
        "Train the built-in demo model (a small NumPy network on synthetic data). "
        "`%jobctl train --help` lists the options.",
    ),
    ("code", f"%jobctl train --name quickstart --epochs 30 {SMOKE}"),
    (
        "markdown",
        "The same jobs from Python: the client finds this notebook's server by itself.",
    ),
    (
        "code",
        "import time\n"
        "from jupyter_jobctl.kernel.client import JobctlClient\n\n"
        "client = JobctlClient.discover()\n"
        "job = client.list_jobs(limit=1)['jobs'][0]\n"
        "print(job['name'], job['kind'])",
    ),
    (
        "markdown",
        "Click **Stop** in the view above, or stop from code. The trainer unwinds at its next "
        "checkpoint (its `finally` blocks run) and the job ends `cancelled`.",
    ),
    (
        "code",
        "# NBVAL_CHECK_OUTPUT\n"
        f"{WAIT_FOR_END}\n\n"
        "client.stop(job['id'])\n"
        "print(wait_for_end(job['id'])['status'])",
    ),
    ("markdown", "Every job this server knows, newest first:"),
    ("code", "%jobctl list --limit 5"),
]

BATCHES = [
    (
        "markdown",
        "# Test batches: run a suite, watch each test, rerun the failures\n\n"
        "`%jobctl test ARGS…` runs pytest with these arguments in a worker process, from this "
        "notebook's folder. Each test's outcome arrives as it finishes; failures come first in "
        "the view, with their message. `example_tests/` has two tests that fail on purpose.",
    ),
    ("code", "%load_ext jupyter_jobctl"),
    ("code", "%jobctl test example_tests"),
    (
        "code",
        "import time\n"
        "from jupyter_jobctl.kernel.client import JobctlClient\n\n"
        "client = JobctlClient.discover()\n"
        "batch = client.list_jobs(kind='test_batch', limit=1)['jobs'][0]\n\n"
        f"{WAIT_FOR_END}",
    ),
    (
        "code",
        "# NBVAL_CHECK_OUTPUT\n"
        "counts = wait_for_end(batch['id'])['counts']\n"
        "print(f\"{counts['total']} tests: {counts['passed']} passed, {counts['failed']} failed\")",
    ),
    ("markdown", "Run only what failed, with the same options:"),
    ("code", "%jobctl rerun {batch['id']} --failed"),
    (
        "code",
        "# NBVAL_CHECK_OUTPUT\n"
        "rerun = client.list_jobs(kind='test_batch', limit=1)['jobs'][0]\n"
        "counts = wait_for_end(rerun['id'])['counts']\n"
        "print(f\"rerun: {counts['total']} tests, {counts['failed']} failed\")\n"
        "for result in client.results(rerun['id'])['results']:\n"
        "    print(result['outcome'], result['nodeid'])",
    ),
]

RESTARTS = [
    (
        "markdown",
        "# Survive kernel restarts\n\n"
        "A job started here does not live in this kernel. Start a long training, then restart "
        "the kernel (**Kernel → Restart Kernel…**): the job keeps running and the view keeps "
        "updating. Reload the page too — the saved output renders the live view again.",
    ),
    ("code", "%load_ext jupyter_jobctl"),
    ("code", f"%jobctl train --name long-run --epochs 200 {SMOKE}"),
    (
        "markdown",
        "After a restart the kernel knows nothing of earlier jobs. `%jobctl attach` shows a "
        "view of every active job and batch of the server again:",
    ),
    ("code", "%reload_ext jupyter_jobctl\n%jobctl attach"),
    ("markdown", "When you are done, stop everything that is still running:"),
    ("code", "%jobctl stop --all"),
    (
        "code",
        "# NBVAL_CHECK_OUTPUT\n"
        "import time\n"
        "from jupyter_jobctl.kernel.client import JobctlClient\n\n"
        "client = JobctlClient.discover()\n"
        "active = 'pending,initializing,running,paused,stopping'\n"
        "while client.list_jobs(status=active)['jobs']:\n"
        "    time.sleep(0.2)\n"
        "print('nothing is running any more')",
    ),
]

# the notebook that 04 runs as a job (in examples/: nbval runs only the top-level ones)
TRAIN_NOTEBOOK = [
    (
        "markdown",
        "# A training notebook\n\n"
        "Runs as a job from `04_notebook_jobs.ipynb` (or: right-click → **Run as Job**). "
        "The cell tagged `parameters` holds the defaults; a job's parameters are assigned "
        "in a cell added after it.",
    ),
    ("code", "epochs = 3\nlearning_rate = 0.1"),
    (
        "code",
        "import numpy as np\n"
        "from jupyter_jobctl import runtime as jc\n\n"
        "job = jc.current()  # the job's handle, inside the job's own kernel too\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.normal(size=(256, 3))\n"
        "y = x @ np.array([1.5, -2.0, 0.5]) + 0.1 * rng.normal(size=256)\n"
        "w = np.zeros(3)",
    ),
    (
        "code",
        "for epoch in job.progress(range(epochs), unit='epoch'):\n"
        "    grad = 2 * x.T @ (x @ w - y) / len(y)\n"
        "    w -= learning_rate * grad\n"
        "    loss = float(np.mean((x @ w - y) ** 2))\n"
        "    job.metric(step=epoch, loss=loss)\n"
        "    print(f'epoch {epoch} loss {loss:.4f}')\n"
        "    job.checkpoint()  # a Stop ends the notebook here, cleanly",
    ),
    ("code", "print('weights', np.round(w, 2))"),
]

NOTEBOOK_JOBS = [
    (
        "markdown",
        "# Notebooks as jobs\n\n"
        "A notebook can run **out of this kernel**, in a kernel of its own supervised by "
        "jobctl: live `cell n/total` progress, every cell's output in the log, metrics, a "
        "**Stop** button, and an executed copy written beside it as it goes. In JupyterLab: "
        "right-click a notebook in the file browser → **Run as Job**.",
    ),
    ("code", "%load_ext jupyter_jobctl"),
    ("code", "%jobctl notebook examples/train_notebook.ipynb -p epochs 20 -p learning_rate 0.05"),
    (
        "markdown",
        "The parameters were injected after the notebook's `parameters` cell. When it has "
        "run, the executed copy holds every output:",
    ),
    (
        "code",
        "import time\nfrom jupyter_jobctl.kernel.client import JobctlClient\n\n"
        "client = JobctlClient.discover()\n" + WAIT_FOR_END,
    ),
    (
        "code",
        "# NBVAL_CHECK_OUTPUT\n"
        "import nbformat\n\n"
        "job = wait_for_end(client.list_jobs(kind='notebook', limit=1)['jobs'][0]['id'])\n"
        "done, total, unit = (job['progress'][k] for k in ('done', 'total', 'unit'))\n"
        "print(job['status'], f'{done:.0f}/{total:.0f} {unit}')\n"
        "copy = nbformat.read(job['output_path'], as_version=4)\n"
        "print(copy.cells[-1].outputs[0]['text'].strip())",
    ),
]

NOTEBOOK_CELLS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_test_batches.ipynb": BATCHES,
    "03_survive_restarts.ipynb": RESTARTS,
    "04_notebook_jobs.ipynb": NOTEBOOK_JOBS,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """A Jupyter server with the extension on a throw-away database."""
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "JUPYTER_DATA_DIR": str(root / "data"),
    }
    argv = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={NOTEBOOKS}",
        f"--JobCtl.db_url=sqlite:///{root / 'jobctl.db'}",
    ]
    if os.geteuid() == 0:
        argv.append("--allow-root")
    log = open(root / "server.log", "ab")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/jobctl/api/health", timeout=2):
                return proc, url, token
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "server.log").read_text()[-2000:]) from None
            time.sleep(0.1)


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    nb.metadata["language_info"] = {"name": "python"}
    make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell}
    nb.cells = [make[kind](source) for kind, source in cells]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # stable ids: regenerating changes only what really changed
    return nb


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="jobctl-notebooks-"))
    proc, url, token = start_server(root)
    os.environ.update({"JOBCTL_URL": url, "JOBCTL_TOKEN": token})
    try:
        train = build(TRAIN_NOTEBOOK)
        train.cells[1].metadata["tags"] = ["parameters"]
        nbformat.write(train, NOTEBOOKS / "examples" / "train_notebook.ipynb")
        for name, cells in NOTEBOOK_CELLS.items():
            nb = build(cells)
            NotebookClient(
                nb, timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}}
            ).execute()
            for cell in nb.cells:  # timings and counts would change on every regeneration
                cell.get("metadata", {}).pop("execution", None)
            nbformat.write(nb, NOTEBOOKS / name)
            print(f"wrote notebooks/{name}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        # jobs the notebooks left running (none should be): end them with the server's DB
        from jupyter_jobctl.manager import JobManager

        m = JobManager(f"sqlite:///{root / 'jobctl.db'}")
        left = [row["id"] for row in m.store.active_rows()]
        for job_id in left:
            m.stop(job_id)
        m.close()
        if left:
            print(f"stopped {len(left)} job(s) the notebooks left running: {json.dumps(left)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
