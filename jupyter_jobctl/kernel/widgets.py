"""Notebook views of jobs (anywidget): ``JobWidget``, ``BatchWidget`` and ``JobsWidget``.

Python syncs only ``job_id`` and ``view``; the view (TypeScript, ``jupyter_jobctl/static/
widget.js``) talks to the server itself. Each display bundle also carries an
``application/vnd.jupyter.jobctl+json`` item, saved with the notebook: where the jobctl
labextension is installed (JupyterLab, Notebook 7) it renders the live view from that item
with no kernel at all, so the view outlives the kernel (docs/architecture.md). Elsewhere
(VS Code, Colab) the anywidget view renders, and reaches the API through the comm relay
(:mod:`jupyter_jobctl.kernel.relay`) when its page is not a Jupyter page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets

from .client import JobctlClient
from .relay import CommRelay

MIME_TYPE = "application/vnd.jupyter.jobctl+json"
PACKAGE = Path(__file__).parent.parent
# built by the labextension's build (hatch-jupyter-builder) from labextension/src
VIEW_SCRIPTS = (PACKAGE / "static" / "widget.js", Path(__file__).parent / "static" / "widget.js")
# shown instead of the view when the package was installed without its built assets
MISSING_VIEW = """
export default {
  render({ model, el }) {
    const id = model.get("job_id");
    el.textContent = "jobctl " + (id ? "job " + id : "jobs") +
      ": the job view's script (jupyter_jobctl/static/widget.js) is not built; " +
      "reinstall jupyter_jobctl with its front end (pip install .).";
  },
};
"""


def view_script() -> str:
    """The view's ESM source, read when a widget is made (a rebuilt file is picked up)."""
    for path in VIEW_SCRIPTS:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return MISSING_VIEW


class _View(anywidget.AnyWidget):
    """One front-end view; its comm also carries the relay for non-Jupyter pages."""

    job_id = traitlets.Unicode("").tag(sync=True)
    view = traitlets.Unicode("job").tag(sync=True)

    @property
    def _esm(self) -> str:
        return view_script()

    def __init__(self, *, client: JobctlClient | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._relay = CommRelay(self.send, client if client is not None else JobctlClient.discover)
        self.on_msg(self._on_view_message)

    def _on_view_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        self._relay.handle(content)

    def close(self) -> None:
        self._relay.close()
        super().close()

    def _mime_item(self) -> dict[str, Any]:
        return {"job_id": self.job_id}

    def _summary(self) -> str:
        return f"<jobctl job {self.job_id}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        return {**data, MIME_TYPE: self._mime_item(), "text/plain": self._summary()}, metadata


class JobWidget(_View):
    """The live view of one job (any kind, however it was started)."""

    def __init__(
        self, job_id: str, *, client: JobctlClient | None = None, job: dict[str, Any] | None = None
    ) -> None:
        super().__init__(client=client, job_id=job_id, view="job")
        self._job = job

    def _summary(self) -> str:
        # no state here: text/plain is saved with the notebook and would go stale
        job = self._job
        if not job:
            return f"<jobctl job {self.job_id}>"
        return f"<jobctl {job.get('kind', 'job')} job {self.job_id} {job.get('name')!r}>"


class BatchWidget(JobWidget):
    """The live view of a test batch: counts and failing tests first (the same job view)."""


class JobsWidget(_View):
    """A live list of every job."""

    def __init__(self, *, client: JobctlClient | None = None) -> None:
        super().__init__(client=client, job_id="", view="jobs")

    def _mime_item(self) -> dict[str, Any]:
        return {"view": "jobs"}

    def _summary(self) -> str:
        return "<jobctl jobs>"


def job_view(job: dict[str, Any], client: JobctlClient | None = None) -> JobWidget:
    """The view for a job object from the API: a :class:`BatchWidget` for test batches."""
    cls = BatchWidget if job.get("kind") == "test_batch" else JobWidget
    return cls(job["id"], client=client, job=job)
