"""Job views (anywidget) and the comm relay, the relay against a real server."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import RealServer, wait_for
from jupyter_jobctl.kernel import widgets
from jupyter_jobctl.kernel.client import JobctlClient
from jupyter_jobctl.kernel.relay import CommRelay
from jupyter_jobctl.kernel.widgets import MIME_TYPE, BatchWidget, JobsWidget, JobWidget, job_view
from tests.conftest import TERMINAL, wait_job

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
JOB_ID = "0123456789abcdef0123456789abcdef"
SMOKE = {"mode": "smoke_test", "batch_size": 2, "learning_rate": 0.001, "optimizer": "adam"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def training(epochs: int) -> dict:
    return {"target": "jupyter_jobctl.examples.train:main", "config": {**SMOKE, "epochs": epochs}}


@pytest.fixture
def client(jobctl_server: RealServer) -> Iterator[JobctlClient]:
    with JobctlClient(jobctl_server.url, jobctl_server.token) as c:
        yield c


# -- the display bundle and the traits -----------------------------------------------------


def test_job_bundle_carries_the_mime_item_the_widget_view_and_text() -> None:
    data, _metadata = JobWidget(JOB_ID)._repr_mimebundle_()
    assert data[MIME_TYPE] == {"job_id": JOB_ID}
    assert data[WIDGET_MIME]["model_id"]
    assert data["text/plain"] == f"<jobctl job {JOB_ID}>"


def test_jobs_bundle_names_the_list_view() -> None:
    widget = JobsWidget()
    data, _ = widget._repr_mimebundle_()
    assert data[MIME_TYPE] == {"view": "jobs"} and data["text/plain"] == "<jobctl jobs>"
    assert (widget.view, widget.job_id) == ("jobs", "")


def test_batch_widget_is_the_job_view_and_job_view_picks_it() -> None:
    batch = BatchWidget(JOB_ID)
    assert (batch.view, batch.job_id) == ("job", JOB_ID)
    assert batch._repr_mimebundle_()[0][MIME_TYPE] == {"job_id": JOB_ID}
    made = job_view({"id": JOB_ID, "kind": "test_batch", "name": "suite"})
    assert type(made).__name__ == "BatchWidget"
    assert made._repr_mimebundle_()[0]["text/plain"] == f"<jobctl test_batch job {JOB_ID} 'suite'>"
    assert type(job_view({"id": JOB_ID, "kind": "training", "name": "t"})).__name__ == "JobWidget"


def test_python_syncs_only_the_job_id_and_the_view() -> None:
    widget = JobWidget(JOB_ID)
    base = set(widgets.anywidget.AnyWidget().keys)
    assert set(widget.keys) - base == {"job_id", "view"}
    state = widget.get_state()
    assert state["job_id"] == JOB_ID and state["view"] == "job"


def test_view_script_is_read_when_a_widget_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing.js"
    monkeypatch.setattr(widgets, "VIEW_SCRIPTS", (missing,))
    assert JobWidget(JOB_ID).get_state()["_esm"] == widgets.MISSING_VIEW
    built = tmp_path / "widget.js"
    built.write_text("export default { render({ el }) { el.textContent = 'built'; } };\n")
    monkeypatch.setattr(widgets, "VIEW_SCRIPTS", (missing, built))
    assert JobWidget(JOB_ID).get_state()["_esm"] == built.read_text()


# -- the relay -----------------------------------------------------------------------------


class Outbox:
    """What the relay sends to the view, with waits on it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, message: dict[str, Any]) -> None:
        with self.lock:
            self.messages.append(message)

    def response(self, request_id: int, timeout: float = 30) -> dict[str, Any]:
        return wait_for(
            lambda: next(
                (
                    m
                    for m in list(self.messages)
                    if m["jobctl"] == "response" and m["id"] == request_id
                ),
                None,
            ),
            timeout,
            f"the relay's response {request_id}",
        )

    def of(self, sub: int) -> list[dict[str, Any]]:
        return [m for m in list(self.messages) if m.get("sub") == sub]

    def closed(self, sub: int, timeout: float = 60) -> list[dict[str, Any]]:
        wait_for(
            lambda: any(m["jobctl"] == "closed" for m in self.of(sub)),
            timeout,
            f"subscription {sub} to close",
        )
        return self.of(sub)


@pytest.fixture
def relay(client: JobctlClient) -> Iterator[tuple[CommRelay, Outbox]]:
    outbox = Outbox()
    r = CommRelay(outbox, client)
    try:
        yield r, outbox
    finally:
        r.close()


def request(relay: CommRelay, n: int, method: str, path: str, body: Any = None) -> None:
    message = {"jobctl": "request", "id": n, "method": method, "path": path, "body": body}
    assert relay.handle(message) is True


def test_relay_requests_answer_with_the_servers_status_and_body(
    relay: tuple[CommRelay, Outbox], client: JobctlClient, jobctl_server: RealServer
) -> None:
    r, out = relay
    request(r, 1, "POST", "jobs", {"kind": "training", "spec": training(1), "start": True})
    created = out.response(1)
    assert created["status"] == 201 and created["body"]["kind"] == "training"
    job_id = created["body"]["id"]
    request(r, 2, "GET", f"jobs/{job_id}")
    assert out.response(2)["body"]["id"] == job_id
    wait_job(jobctl_server, job_id, *TERMINAL)
    request(r, 3, "GET", f"jobs/{job_id}/events?after=0&limit=2")
    assert [e["seq"] for e in out.response(3)["body"]["events"]] == [1, 2]

    request(r, 4, "POST", f"jobs/{job_id}/stop")
    conflict = out.response(4)
    assert conflict["status"] == 409
    assert conflict["body"]["error"] == f"Job {job_id} is already completed; it cannot be stopped."
    request(r, 5, "GET", f"jobs/{'9' * 32}")
    assert out.response(5) == {
        "jobctl": "response",
        "id": 5,
        "status": 404,
        "body": {"error": f"No job with id '{'9' * 32}' exists."},
    }
    request(r, 6, "POST", "jobs", {"kind": "training", "spec": {"target": 3}})
    bad = out.response(6)
    assert bad["status"] == 400 and bad["body"]["field"].startswith("spec")
    request(r, 7, "DELETE", f"jobs/{job_id}")
    assert out.response(7) == {"jobctl": "response", "id": 7, "status": 204, "body": None}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "../../api/kernels"),
        ("GET", "jobs/../../../api/contents"),
        ("GET", "/api/kernels"),
        ("GET", "http://example.com/jobctl/api/jobs"),
        ("GET", "jobs%2F..%2F..%2Fapi"),
        ("GET", "//example.com/x"),
        ("PUT", "jobs"),
        ("GET", None),
    ],
)
def test_relay_only_reaches_the_jobctl_api(
    relay: tuple[CommRelay, Outbox], method: str, path: Any
) -> None:
    r, out = relay
    request(r, 1, method, path)
    rejected = out.response(1)
    assert rejected["status"] == 400 and "relay" in rejected["body"]["error"]


def test_relay_stream_of_a_job_forwards_frames_until_done(
    relay: tuple[CommRelay, Outbox], client: JobctlClient
) -> None:
    r, out = relay
    job = client.create_job("training", training(2), start=True)
    assert r.handle(
        {"jobctl": "subscribe", "sub": 1, "path": f"jobs/{job['id']}/stream", "after": 0}
    )
    frames = [m["message"] for m in out.closed(1) if m["jobctl"] == "message"]
    assert out.of(1)[-1] == {"jobctl": "closed", "sub": 1, "code": 1000, "reason": ""}
    assert frames[0]["type"] == "snapshot" and frames[-1] == {
        "type": "done",
        "status": "completed",
        "last_seq": frames[-1]["last_seq"],
    }
    seqs = [f["seq"] for f in frames if f["type"] == "event"]
    assert seqs == list(range(1, frames[-1]["last_seq"] + 1))
    # resuming after a seq: the rest only
    assert r.handle(
        {"jobctl": "subscribe", "sub": 2, "path": f"jobs/{job['id']}/stream", "after": 5}
    )
    again = [m["message"] for m in out.closed(2) if m["jobctl"] == "message"]
    assert [f["seq"] for f in again if f["type"] == "event"] == seqs[5:]


def test_relay_list_stream_and_unsubscribe(
    relay: tuple[CommRelay, Outbox], client: JobctlClient
) -> None:
    r, out = relay
    assert r.handle({"jobctl": "subscribe", "sub": 7, "path": "stream"})
    # the socket is open once the relay holds it; then a new job shows up on it
    wait_for(lambda: r._subs.get(7) is not None, 30, "the list stream to open")
    job = client.create_job("command", {"argv": [sys.executable, "-c", "pass"]}, start=False)
    wait_for(
        lambda: any(
            m["jobctl"] == "message" and (m["message"].get("job") or {}).get("id") == job["id"]
            for m in out.of(7)
        ),
        30,
        "the new job on the list stream",
    )
    assert r.handle({"jobctl": "unsubscribe", "sub": 7})
    assert out.closed(7)[-1] == {"jobctl": "closed", "sub": 7}  # no server close: no code
    client.stop(job["id"])


def test_relay_bad_subscriptions_close_at_once(
    relay: tuple[CommRelay, Outbox], client: JobctlClient
) -> None:
    r, out = relay
    r.handle({"jobctl": "subscribe", "sub": 1, "path": "../api/kernels"})
    r.handle({"jobctl": "subscribe", "sub": 2, "path": "jobs/x/stream", "after": "0"})
    r.handle({"jobctl": "subscribe", "sub": 3, "path": f"jobs/{'8' * 32}/stream", "after": 0})
    for sub in (1, 2, 3):
        assert out.closed(sub) == [{"jobctl": "closed", "sub": sub}]
    assert r.handle({"jobctl": "something else"}) is False
    assert r.handle("not a relay message") is False


class RecordingJobWidget(JobWidget):
    """A job view whose messages to the front end are kept (there is no front end here)."""

    def send(self, content: Any, buffers: Any = None) -> None:  # type: ignore[override]
        self.sent = [*getattr(self, "sent", []), content]


def test_relay_without_a_server_answers_status_0_with_the_reason() -> None:
    outbox = Outbox()
    relay = CommRelay(outbox, JobctlClient(f"http://127.0.0.1:{free_port()}/", "t"))
    try:
        request(relay, 1, "GET", "jobs")
        unreachable = outbox.response(1)
        assert unreachable["status"] == 0
        assert unreachable["body"]["error"].startswith("Could not reach the Jupyter server at")
        relay.handle({"jobctl": "subscribe", "sub": 1, "path": "stream"})
        assert outbox.closed(1) == [{"jobctl": "closed", "sub": 1}]
    finally:
        relay.close()


def test_widget_custom_messages_reach_the_relay(client: JobctlClient) -> None:
    job = client.create_job("command", {"argv": [sys.executable, "-c", "pass"]}, start=False)
    widget = RecordingJobWidget(job["id"], client=client)
    try:
        # what ipywidgets does with a comm message {"method": "custom", "content": ...}
        widget._handle_custom_msg(
            {"jobctl": "request", "id": 42, "method": "GET", "path": f"jobs/{job['id']}"}, []
        )
        reply = wait_for(lambda: getattr(widget, "sent", None), 30, "the widget's reply")
        assert reply[0]["jobctl"] == "response" and reply[0]["id"] == 42
        assert reply[0]["status"] == 200 and reply[0]["body"]["id"] == job["id"]
    finally:
        widget.close()
        client.stop(job["id"])
