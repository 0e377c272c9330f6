"""Notebooks run as jobs from JupyterLab (issue 15), as a researcher does it: right-click a
notebook in the file browser (or its toolbar button), give parameters, watch the cells go by
in the job's detail tab, stop it, open the executed copy."""

from __future__ import annotations

import json
import time
from typing import Any

from browser_harness import TERMINAL, Lab, shoot, wait_until
from playwright.sync_api import expect
from test_panel import _record, button, expect_state, open_panel, stop_quietly

CELLS = [
    ("epochs = 1", ["parameters"]),
    (
        "import time\nfor epoch in range(epochs):\n    print('epoch', epoch, flush=True)\n"
        "    time.sleep(0.2)",
        [],
    ),
    ("print('done after', epochs, 'epochs')", []),
]


def write_tagged(lab: Lab, name: str, cells: list[tuple[str, list[str]]]) -> str:
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {"tags": tags} if tags else {},
                "outputs": [],
                "source": source,
            }
            for source, tags in cells
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (lab.root / "work" / name).write_text(json.dumps(nb))
    return name


def notebook_jobs(lab: Lab, name: str) -> list[dict[str, Any]]:
    status, page = lab.api("GET", "jobs?kind=notebook&limit=100")
    assert status == 200, page
    return [j for j in page["jobs"] if j["name"] == name]


def run_dialog(page: Any, parameters: str) -> None:
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("as a job")
    dialog.get_by_label("Parameters").fill(parameters)
    dialog.get_by_role("button", name="Run as job").click()
    expect(dialog).to_have_count(0)


def test_run_a_notebook_from_the_file_browser_and_open_its_executed_copy(
    lab: Lab, page: Any
) -> None:
    name = write_tagged(lab, "experiment.ipynb", CELLS)
    open_panel(page, lab)
    page.locator('li[data-id="filebrowser"]').click()
    item = page.locator(".jp-DirListing-item").filter(has_text=name).first
    expect(item).to_be_visible(timeout=30_000)
    item.click(button="right")
    page.get_by_role("menuitem", name="Run as Job").click()
    clicked = time.monotonic()
    run_dialog(page, '{"epochs": 3}')

    view = page.locator(".jobctl-detail .jobctl-job").first
    expect(view).to_be_visible(timeout=30_000)
    expect(view.locator(".jobctl-kind")).to_have_text("notebook")
    expect(view.locator(".jobctl-log")).to_contain_text("[CELL", timeout=60_000)
    _record("notebook_click_to_first_cell_on_screen_s", time.monotonic() - clicked)
    expect_state(view, "completed", timeout=90_000)
    # 3 code cells and the injected parameters: one progress step per cell
    expect(view.locator(".jobctl-progress-text")).to_contain_text("4/4 cell")
    expect(view.locator(".jobctl-log")).to_contain_text("done after 3 epochs")
    (job,) = notebook_jobs(lab, name)
    copy_name = f"experiment.{job['id'][:8]}.ipynb"
    expect(view.locator(".jobctl-copy")).to_have_text(f"Executed copy: {copy_name}Open")
    shoot(page, "notebook-job-01-completed")

    view.get_by_role("button", name="Open the executed copy").click()
    wait_until(
        lambda: (
            page.evaluate(
                "() => { const w = window.jupyterapp.shell.currentWidget;"
                " return w && w.context ? w.context.path : null; }"
            )
            == copy_name
        ),
        30,
        "the executed copy to open in a tab",
    )
    notebook = page.locator(".jp-NotebookPanel:visible")
    expect(notebook.locator(".jp-OutputArea-output").filter(has_text="epoch 2")).to_be_visible()
    expect(notebook).to_contain_text("epochs = 3")  # the injected parameters cell
    shoot(page, "notebook-job-02-executed-copy")


def test_run_from_the_notebook_toolbar_then_stop_the_sleeping_cell(lab: Lab, page: Any) -> None:
    name = write_tagged(
        lab, "sleeper.ipynb", [("print('going to sleep')", []), ("import time\ntime.sleep(60)", [])]
    )
    page.goto(lab.url_for(f"lab/tree/{name}") + "&reset")
    toolbar_button = page.locator('.jp-Toolbar-item[data-jp-item-name="jobctl-run-as-job"]')
    expect(toolbar_button).to_be_visible(timeout=60_000)
    toolbar_button.locator("button, jp-button").first.click()
    run_dialog(page, "")
    view = page.locator(".jobctl-detail .jobctl-job").first
    try:
        expect_state(view, "running", timeout=60_000)
        expect(view.locator(".jobctl-log")).to_contain_text("[CELL 2/2]", timeout=60_000)
        expect(view.locator(".jobctl-progress-text")).to_contain_text("1/2 cell")
        shoot(page, "notebook-job-03-running")
        clicked = time.monotonic()
        button(view, "Stop").click()
        expect_state(view, "cancelled", timeout=30_000)
        _record("notebook_stop_click_to_cancelled_s", time.monotonic() - clicked)
        expect(view.locator(".jobctl-log")).to_contain_text(
            "[CANCELLATION] stopped in cell 2 (KeyboardInterrupt)"
        )
        expect(view.locator(".jobctl-copy")).to_contain_text("Executed copy: sleeper.")
        shoot(page, "notebook-job-04-cancelled")
    finally:
        active = [j["id"] for j in notebook_jobs(lab, name) if j["status"] not in TERMINAL]
        stop_quietly(lab, *active)


def test_bad_parameters_say_why_and_start_nothing(lab: Lab, page: Any) -> None:
    name = write_tagged(lab, "strict.ipynb", CELLS)
    open_panel(page, lab)
    page.locator('li[data-id="filebrowser"]').click()
    item = page.locator(".jp-DirListing-item").filter(has_text=name).first
    expect(item).to_be_visible(timeout=30_000)
    for typed, sentence in (
        ("[1, 2]", "The parameters must be a JSON object"),
        ('{"2x": 1}', "'2x' is not a valid parameter name"),
    ):
        item.click(button="right")
        page.get_by_role("menuitem", name="Run as Job").click()
        run_dialog(page, typed)
        toast = page.locator(".Toastify__toast").filter(has_text=sentence)
        expect(toast).to_be_visible(timeout=15_000)
    shoot(page, "notebook-job-05-bad-parameters")
    assert notebook_jobs(lab, name) == []
