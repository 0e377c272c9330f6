"""Browser tests: a real JupyterLab with the extension, driven by Debian's chromium.

Fixtures only; the lab and the page helpers are in ``browser_harness.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_harness import BROWSER_ARGS, CHROMIUM, Lab, shoot


# pytest-jupyter's autouse fixtures close the event loop Playwright's sync API runs on
@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[None]:
    yield None


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    yield


def _start_lab(**kwargs: Any) -> Iterator[Lab]:
    if not Path(CHROMIUM).exists():
        message = "Debian chromium is not installed; `make test` installs it."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="jobctl-e2e-"))
    lab = Lab(root, **kwargs)
    try:
        yield lab
    finally:
        try:
            lab.stop_everything()
        finally:
            lab.kill()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    yield from _start_lab()


@pytest.fixture(scope="session")
def lab_without_extension() -> Iterator[Lab]:
    """A lab where the jobctl labextension is disabled: the anywidget host remains."""
    yield from _start_lab(disable_labextension=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # chromium's sockets live in its temp dir: a long path breaks them
    tmp = tempfile.mkdtemp(dir="/tmp", prefix="pw-")
    os.environ["TMPDIR"] = tmp
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        if dialog.type == "beforeunload":  # a reload the test asked for: let it happen
            dialog.accept()
            return
        dialogs.append(dialog.message)  # an XSS payload would open one
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.dialogs = dialogs
    try:
        yield page
    finally:
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            shoot(page, f"FAILED-{request.node.name}")
        context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
