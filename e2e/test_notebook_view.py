"""The notebook job view as a researcher uses it: start from a cell, watch, stop, survive.

Every test drives a real JupyterLab in Debian's chromium; names are those of docs/architecture.md.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from browser_harness import (
    SMOKE,
    Lab,
    job_view,
    lab_command,
    open_notebook,
    run_all_cells,
    shoot,
    wait_until,
    write_notebook,
)
from playwright.sync_api import expect

MIME = "application/vnd.jupyter.jobctl+json"
MEASURED = {}  # figures for the closing note, written next to the screenshots


def _record(name: str, value: float) -> None:
    from browser_harness import ARTIFACTS

    MEASURED[name] = round(value, 3)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "measurements.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**old, **MEASURED}, indent=1))


def _watch_texts(page: Any, view: Any) -> None:
    """Record every text the view shows, so a brief `Stopping…` is not missed."""
    view.evaluate(
        """root => {
            window.__jobctlTexts = [root.innerText];
            new MutationObserver(() => window.__jobctlTexts.push(root.innerText))
                .observe(root, {subtree: true, childList: true, characterData: true});
        }"""
    )


def _seen(page: Any, text: str) -> bool:
    return bool(page.evaluate(f"() => window.__jobctlTexts.some(t => t.includes({text!r}))"))


def badge(view: Any) -> Any:
    """The state badge (docs/architecture.md: its text is the state's name)."""
    return view.locator("[data-jobctl-status]").first


def _progress_text(view: Any) -> str:
    return str(view.locator(".jobctl-progress").first.inner_text())


def _log_lines(view: Any) -> list[str]:
    return [str(t) for t in view.locator(".jobctl-log-line").all_inner_texts()]


def _restart_kernel(lab: Lab, notebook: str) -> None:
    """Restart the notebook's kernel through the server, as Kernel → Restart does."""
    status, sessions = lab.api_root("GET", "api/sessions")
    assert status == 200, sessions
    kernel = next(s["kernel"]["id"] for s in sessions if s["path"] == notebook)
    status, body = lab.api_root("POST", f"api/kernels/{kernel}/restart")
    assert status == 200, body


def _reload(page: Any) -> None:
    page.reload(wait_until="domcontentloaded", timeout=90_000)


def test_train_watch_and_stop_from_a_cell(lab: Lab, page: Any) -> None:
    nb = write_notebook(
        lab,
        "stop.ipynb",
        ["%load_ext jupyter_jobctl", f"%jobctl train --name stop-me --epochs 30 {SMOKE}"],
    )
    open_notebook(page, lab, nb)
    run_all_cells(page)
    view = job_view(page)
    expect(view).to_be_visible(timeout=60_000)
    job_id = view.get_attribute("data-jobctl-job")
    assert job_id and lab.job(job_id)["name"] == "stop-me"
    expect(badge(view)).to_have_text("running", timeout=30_000)
    first = _progress_text(view)
    wait_until(lambda: _progress_text(view) != first, 30, "the progress to move")
    assert re.search(r"\d+/30", _progress_text(view))
    wait_until(lambda: _log_lines(view), 30, "log lines in the view")
    shoot(page, "01-running")

    _watch_texts(page, view)
    stop = view.get_by_role("button", name="Stop", exact=True)
    clicked = time.monotonic()
    stop.click()
    expect(badge(view)).to_have_text("cancelled", timeout=10_000)
    elapsed = time.monotonic() - clicked
    _record("stop_click_to_cancelled_s", elapsed)
    assert _seen(page, "Stopping…")
    assert elapsed < 2.0, f"Stop took {elapsed:.2f}s to show cancelled"
    expect(view.get_by_role("button", name="Stop", exact=True)).to_have_count(0)
    assert lab.job(job_id)["status"] == "cancelled"
    shoot(page, "02-cancelled")


def test_view_outlives_kernel_restarts_and_reloads(lab: Lab, page: Any) -> None:
    nb = write_notebook(
        lab,
        "survive.ipynb",
        ["%load_ext jupyter_jobctl", f"%jobctl train --name survivor --epochs 60 {SMOKE}"],
    )
    open_notebook(page, lab, nb)
    run_all_cells(page)
    view = job_view(page)
    expect(badge(view)).to_have_text("running", timeout=60_000)
    job_id = view.get_attribute("data-jobctl-job")

    _restart_kernel(lab, nb)
    before = _progress_text(view)
    wait_until(lambda: _progress_text(view) != before, 30, "progress after a kernel restart")
    shoot(page, "03-after-kernel-restart")

    lab_command(page, "docmanager:save")
    wait_until(lambda: MIME in (lab.root / "work" / nb).read_text(), 30, "the saved output")
    _restart_kernel(lab, nb)
    reloaded = time.monotonic()
    _reload(page)
    view = job_view(page, job_id)
    expect(badge(view)).to_have_text("running", timeout=60_000)
    _record("reload_to_view_showing_running_s", time.monotonic() - reloaded)
    before = _progress_text(view)
    wait_until(lambda: _progress_text(view) != before, 30, "progress after a reload")
    _record("reload_to_next_progress_update_s", time.monotonic() - reloaded)
    shoot(page, "04-after-reload")

    view.get_by_role("button", name="Stop", exact=True).click()
    expect(badge(view)).to_have_text("cancelled", timeout=10_000)


def test_batch_view_keeps_counting_after_a_reload(lab: Lab, page: Any) -> None:
    suite = lab.root / "work" / "slow_suite"
    suite.mkdir(exist_ok=True)
    (suite / "test_slow.py").write_text(
        "import time, pytest\n\n"
        "@pytest.mark.parametrize('i', range(200))\n"
        "def test_step(i):\n"
        "    time.sleep(0.2)\n"
        "    assert i % 7 != 3, f'step {i} is unlucky'\n"
    )
    nb = write_notebook(lab, "batch.ipynb", ["%load_ext jupyter_jobctl", "%jobctl test slow_suite"])
    open_notebook(page, lab, nb)
    run_all_cells(page)
    view = job_view(page)
    expect(badge(view)).to_have_text("running", timeout=60_000)
    job_id = view.get_attribute("data-jobctl-job")
    wait_until(lambda: lab.job(job_id)["counts"]["failed"] >= 1, 60, "a failed test")
    expect(view.get_by_text("step 3 is unlucky").first).to_be_visible(timeout=15_000)
    shoot(page, "05-batch-running")

    lab_command(page, "docmanager:save")
    wait_until(lambda: MIME in (lab.root / "work" / nb).read_text(), 30, "the saved output")
    _reload(page)
    view = job_view(page, job_id)
    expect(badge(view)).to_have_text("running", timeout=60_000)
    seen = lab.job(job_id)["counts"]["completed"]
    wait_until(
        lambda: lab.job(job_id)["counts"]["completed"] > seen + 2, 60, "tests after the reload"
    )
    completed = str(lab.job(job_id)["counts"]["completed"])
    wait_until(lambda: completed in view.inner_text(), 15, "the view to show the new count")
    shoot(page, "06-batch-after-reload")
    view.get_by_role("button", name="Stop", exact=True).click()
    expect(badge(view)).to_have_text("cancelled", timeout=15_000)


def _saved_view_notebook(lab: Lab, name: str, job_id: str) -> str:
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": 1,
                "metadata": {},
                "source": f"JobWidget({job_id!r})",
                "outputs": [
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {
                            "application/vnd.jupyter.jobctl+json": {"job_id": job_id},
                            "text/plain": f"<jobctl job {job_id}>",
                        },
                    }
                ],
            }
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (lab.root / "work" / name).write_text(json.dumps(nb))
    return name


def _demo_job(lab: Lab, name: str, epochs: int = 60) -> str:
    config = {
        "mode": "smoke_test",
        "epochs": epochs,
        "batch_size": 2,
        "learning_rate": 0.001,
        "optimizer": "adam",
    }
    spec = {"target": "jupyter_jobctl.examples.train:main", "config": config}
    status, job = lab.api(
        "POST", "jobs", {"kind": "training", "name": name, "spec": spec, "start": True}
    )
    assert status == 201, job
    return str(job["id"])


def test_notebook_7_renders_the_view(lab: Lab, page: Any) -> None:
    job_id = _demo_job(lab, "in-notebook-7")
    nb = _saved_view_notebook(lab, "nb7.ipynb", job_id)
    page.goto(lab.url_for(f"notebooks/{nb}"))
    view = job_view(page, job_id)
    expect(badge(view)).to_have_text("running", timeout=60_000)
    expect(view.get_by_text("in-notebook-7")).to_be_visible()
    shoot(page, "07-notebook7")
    view.get_by_role("button", name="Stop", exact=True).click()
    expect(badge(view)).to_have_text("cancelled", timeout=10_000)


def test_anywidget_view_without_the_labextension(lab_without_extension: Lab, page: Any) -> None:
    lab = lab_without_extension
    job_id = _demo_job(lab, "anywidget-host")
    nb = write_notebook(
        lab,
        "fallback.ipynb",
        [f"from jupyter_jobctl.kernel.widgets import JobWidget\nJobWidget({job_id!r})"],
    )
    open_notebook(page, lab, nb)
    run_all_cells(page)
    view = job_view(page, job_id)
    expect(badge(view)).to_have_text("running", timeout=60_000)
    shoot(page, "08-anywidget-host")
    view.get_by_role("button", name="Stop", exact=True).click()
    expect(badge(view)).to_have_text("cancelled", timeout=10_000)
    assert lab.job(job_id)["status"] == "cancelled"
    # no JupyterLab dialogs here: Delete asks inside the view, and Cancel keeps the job
    actions = view.get_by_role("group", name="Job actions")
    actions.get_by_role("button", name="Delete", exact=True).click()
    question = view.get_by_role("alertdialog", name="Delete this job?")
    expect(question).to_contain_text('"anywidget-host" and its logs')
    shoot(page, "08b-anywidget-delete-asks")
    question.get_by_role("button", name="Cancel").click()
    expect(question).to_have_count(0)
    assert lab.job(job_id)["status"] == "cancelled"
    actions.get_by_role("button", name="Delete", exact=True).click()
    question.get_by_role("button", name="Delete", exact=True).click()
    expect(view).to_contain_text("This job no longer exists on the server.")
    status, _ = lab.api("GET", f"jobs/{job_id}")
    assert status == 404


XSS = "<img src=x onerror=alert(1)>"


def test_hostile_names_logs_and_test_ids_render_as_text(lab: Lab, page: Any) -> None:
    suite = lab.root / "work" / "xss_suite"
    suite.mkdir(exist_ok=True)
    (suite / "test_xss.py").write_text(
        "import pytest\n\n"
        f"@pytest.mark.parametrize('payload', [{XSS!r}])\n"
        "def test_payload(payload):\n"
        "    assert False, payload\n"
    )
    nb = write_notebook(
        lab,
        "xss.ipynb",
        [
            "%load_ext jupyter_jobctl",
            f"%jobctl run --name '{XSS}' -- python -c \"print('{XSS}')\"",
            "%jobctl test xss_suite",
        ],
    )
    open_notebook(page, lab, nb)
    run_all_cells(page)
    views = page.locator(".jobctl-job")
    expect(views).to_have_count(2, timeout=60_000)
    for i in range(2):
        expect(badge(views.nth(i))).to_have_text(re.compile("completed|failed"), timeout=60_000)
    text = page.locator(".jobctl-job").first.inner_text()
    assert XSS in text  # the name and the log line, literally
    expect(views.nth(1).get_by_text(XSS).first).to_be_visible()  # test id and message
    assert page.locator('.jobctl-job img[src="x"]').count() == 0
    assert page.dialogs == []
    shoot(page, "09-xss-literal")


def test_server_restart_reconnects_without_a_gap(lab: Lab, page: Any) -> None:
    script = (
        "import time\n"
        "for i in range(1, 301):\n"
        "    print(f'line {i}', flush=True)\n"
        "    time.sleep(0.05)\n"
    )
    (lab.root / "work" / "count.py").write_text(script)
    nb = write_notebook(
        lab,
        "reconnect.ipynb",
        ["%load_ext jupyter_jobctl", "%jobctl run --name counter -- python count.py"],
    )
    open_notebook(page, lab, nb)
    run_all_cells(page)
    view = job_view(page)
    expect(badge(view)).to_have_text("running", timeout=60_000)
    job_id = view.get_attribute("data-jobctl-job")
    wait_until(lambda: len(_log_lines(view)) > 10, 30, "a few log lines")
    _watch_texts(page, view)
    lab.restart()
    wait_until(lambda: _seen(page, "Reconnecting…"), 30, "Reconnecting… while the server is down")
    expect(badge(view)).to_have_text("completed", timeout=90_000)
    numbers = [
        int(m.group(1)) for t in _log_lines(view) if (m := re.fullmatch(r"line (\d+)", t.strip()))
    ]
    assert numbers == list(range(numbers[0], 301)), "the log has a gap or a duplicate"
    assert lab.job(job_id)["status"] == "completed"
    shoot(page, "10-after-server-restart")
