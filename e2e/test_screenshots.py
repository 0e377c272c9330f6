"""The README's pictures, taken from a real session (`make screenshots` writes docs/images/).

In `make test` they go to the artifacts folder like every other screenshot, so the scenes
they show are exercised on every run.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from browser_harness import (
    ARTIFACTS,
    REPO,
    SMOKE,
    Lab,
    open_notebook,
    run_all_cells,
    wait_until,
    write_notebook,
)
from playwright.sync_api import expect

IMAGES = Path(os.environ.get("JOBCTL_README_IMAGES") or ARTIFACTS)


def _readme_shot(target: Any, name: str) -> Path:
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / name
    target.screenshot(path=str(path))
    return path


def test_screenshot_notebook_with_training_and_batch_views(lab: Lab, page: Any) -> None:
    shutil.copytree(
        REPO / "notebooks" / "example_tests",
        lab.root / "work" / "example_tests",
        dirs_exist_ok=True,
    )
    nb = write_notebook(
        lab,
        "experiments.ipynb",
        [
            "%load_ext jupyter_jobctl",
            f"%jobctl train --name baseline-adam --epochs 40 {SMOKE}",
            "%jobctl test example_tests",
        ],
    )
    page.set_viewport_size({"width": 1400, "height": 1250})
    open_notebook(page, lab, nb)
    run_all_cells(page)
    views = page.locator(".jobctl-job")
    expect(views).to_have_count(2, timeout=60_000)
    training, batch = views.nth(0), views.nth(1)
    training_id = training.get_attribute("data-jobctl-job")
    batch_id = batch.get_attribute("data-jobctl-job")
    # a picture worth showing: a few epochs of curves and a finished batch with its failures
    wait_until(lambda: (lab.job(training_id)["progress"]["done"] or 0) >= 4, 120, "4 epochs")
    wait_until(lambda: lab.job(batch_id)["status"] == "completed", 120, "the batch to finish")
    expect(batch.locator("[data-jobctl-status]").first).to_have_text("completed")
    expect(training.locator("canvas").first).to_be_visible()
    path = _readme_shot(page, "notebook.png")
    assert path.stat().st_size > 20_000  # a real picture, not a blank page
    if lab.job(training_id)["status"] == "running":  # a slow run may have finished by now
        training.get_by_role("button", name="Stop", exact=True).click()
    expect(training.locator("[data-jobctl-status]").first).to_have_text(
        re.compile("cancelled|completed"), timeout=15_000
    )


def test_screenshot_panel_with_a_detail_view(lab: Lab, page: Any) -> None:
    config = {
        "mode": "smoke_test",
        "epochs": 40,
        "batch_size": 2,
        "learning_rate": 0.001,
        "optimizer": "adam",
    }
    spec = {"target": "jupyter_jobctl.examples.train:main", "config": config}
    body = {"kind": "training", "name": "lr-sweep-0.001", "spec": spec, "start": True}
    status, job = lab.api("POST", "jobs", body)
    assert status == 201, job
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(lab.url_for("lab") + "&reset")
    tab = page.locator('li[data-id="jobctl-panel"]')
    tab.click()
    panel = page.locator("#jobctl-panel")
    row = panel.locator(f'[data-jobctl-job="{job["id"]}"]')
    expect(row.locator("[data-jobctl-status]").first).to_have_text("running", timeout=60_000)
    row.get_by_role("button", name="Open", exact=True).click()
    view = page.locator(f'.jobctl-detail .jobctl-job[data-jobctl-job="{job["id"]}"]')
    expect(view.locator("[data-jobctl-status]").first).to_have_text("running", timeout=30_000)
    wait_until(lambda: (lab.job(job["id"])["progress"]["done"] or 0) >= 4, 120, "4 epochs")
    expect(view.locator("canvas").first).to_be_visible()
    path = _readme_shot(page, "panel.png")
    assert path.stat().st_size > 20_000
    view.get_by_role("button", name="Stop", exact=True).click()
    expect(view.locator("[data-jobctl-status]").first).to_have_text("cancelled", timeout=15_000)


def test_screenshot_a_notebook_run_as_a_job(lab: Lab, page: Any) -> None:
    work = lab.root / "work"
    shutil.copy(REPO / "notebooks" / "examples" / "train_notebook.ipynb", work / "train.ipynb")
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(lab.url_for("lab/tree/train.ipynb") + "&reset")
    item = page.locator(".jp-DirListing-item").filter(has_text="train.ipynb").first
    expect(item).to_be_visible(timeout=60_000)
    item.click(button="right")
    page.get_by_role("menuitem", name="Run as Job").click()
    dialog = page.locator(".jp-Dialog")
    dialog.get_by_label("Parameters").fill('{"epochs": 60, "learning_rate": 0.02}')
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "run-as-job-dialog.png"))
    dialog.get_by_role("button", name="Run as job").click()
    view = page.locator(".jobctl-detail .jobctl-job").first
    expect(view.locator("[data-jobctl-status]").first).to_have_text("completed", timeout=90_000)
    expect(view.locator("canvas").first).to_be_visible()
    expect(view.locator(".jobctl-copy")).to_contain_text("Executed copy: train.")
    path = _readme_shot(page, "notebook-job.png")
    assert path.stat().st_size > 20_000
