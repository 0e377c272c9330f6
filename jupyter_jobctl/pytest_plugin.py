"""pytest plugin for ``test_batch`` jobs: one event per test, as it finishes.

Loaded into the worker's pytest with ``-p jupyter_jobctl.pytest_plugin`` (never registered
globally). It reports through the job runtime:

- ``collection`` ``{"total"}`` once the test count is known (collection errors are results);
- ``result`` ``{"nodeid", "outcome", "duration", "message"?, "output"?}`` per test, never per
  phase: setup, call and teardown are folded into one outcome, a
  :class:`~jupyter_jobctl.core.states.TestOutcome`
  (``passed|failed|skipped|error|xfailed|xpassed``);
- ``summary`` ``{"counts", "exit_code"}`` at the end (``"stopped": true`` and a ``message``
  when a stop ended the run; ``error`` when pytest could not run the tests);

plus progress (done/total, rate, ETA) and the counts on the job row.

Between two tests the plugin looks at the job: after a stop no further test starts (the
one running finishes, or the SIGINT rung interrupts it; such a test is an ``error`` result
saying so), pytest ends with its ``interrupted`` exit code, 2, and the results so far are
kept; while the job is paused no test starts, and on resume the run goes on where it was.
With pytest-xdist, results arrive through the controller; the plugin stays quiet on xdist
workers (a stop ends the run after the tests the workers have in hand; pause does not apply).
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from jupyter_jobctl import runtime as jc
from jupyter_jobctl.core.states import EventType, TestOutcome

MAX_MESSAGE = 2000
MAX_OUTPUT = 4096
EXIT_STOPPED = int(pytest.ExitCode.INTERRUPTED)  # a stopped batch's exit code (summary, job)
EXIT_MEANING = {
    0: "all tests passed",
    1: "some tests failed",
    2: "the run was interrupted (collection errors, or a stop)",  # a stop: EXIT_STOPPED
    3: "pytest hit an internal error",
    4: "pytest was called wrongly (usage error)",
    5: "no tests were collected",
}


def _trim(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[: cap - 20] + f"\n… ({len(text) - cap} more)"


def _message(report: Any) -> str | None:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return _trim(str(crash.message), MAX_MESSAGE)
    if report.longrepr is None:
        return None
    if isinstance(report.longrepr, tuple):  # skips: (path, line, reason)
        return _trim(str(report.longrepr[-1]), MAX_MESSAGE)
    text = str(getattr(report, "longreprtext", "") or report.longrepr)
    return _trim(text.strip().splitlines()[-1] if text.strip() else text, MAX_MESSAGE)


class _Test:
    """The phases of one test folded into a single outcome."""

    __slots__ = ("duration", "message", "outcome", "output")

    def __init__(self) -> None:
        self.outcome: TestOutcome | None = None
        self.duration = 0.0
        self.message: str | None = None
        self.output = ""

    def add(self, report: Any) -> None:
        self.duration += getattr(report, "duration", 0.0) or 0.0
        captured = (getattr(report, "capstdout", "") or "") + (
            getattr(report, "capstderr", "") or ""
        )
        if captured:
            self.output = captured
        xfail = hasattr(report, "wasxfail")
        if report.when == "call":
            if xfail:
                self.outcome = TestOutcome.XFAILED if report.skipped else TestOutcome.XPASSED
            else:
                self.outcome = TestOutcome(report.outcome)
            if report.outcome != TestOutcome.PASSED or xfail:
                self.message = _message(report) or (report.wasxfail if xfail else None)
        elif report.failed:  # setup or teardown failed: an error, whatever the call did
            if self.outcome != TestOutcome.FAILED:
                self.outcome = TestOutcome.ERROR
                self.message = _message(report)
        elif report.skipped and self.outcome is None:  # skipped (or xfail) in setup
            self.outcome = TestOutcome.XFAILED if xfail else TestOutcome.SKIPPED
            self.message = _message(report)

    def data(self, nodeid: str) -> dict[str, Any]:
        outcome = self.outcome or TestOutcome.PASSED
        out: dict[str, Any] = {
            "nodeid": nodeid,
            "outcome": outcome.value,
            "duration": round(self.duration, 6),
        }
        if self.message:
            out["message"] = self.message
        if self.output and outcome in (TestOutcome.FAILED, TestOutcome.ERROR):
            out["output"] = _trim(self.output, MAX_OUTPUT)
        return out


class JobctlReporter:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.job = jc.current()
        self.total = 0
        self.counts = _zero_counts()
        self.tests: dict[str, _Test] = {}
        self.summarised = False
        self.stopping = False  # a stop was seen: no test starts any more
        self.session: pytest.Session | None = None

    # ---- counting

    def _row_counts(self) -> dict[str, int]:
        c = self.counts
        return {
            "count_total": max(self.total, sum(c.values())),
            "count_completed": sum(c.values()),
            "count_passed": c[TestOutcome.PASSED] + c[TestOutcome.XPASSED],
            "count_failed": c[TestOutcome.FAILED] + c[TestOutcome.ERROR],
            "count_skipped": c[TestOutcome.SKIPPED] + c[TestOutcome.XFAILED],
        }

    def _record(self, data: dict[str, Any]) -> None:
        self.counts[data["outcome"]] += 1
        self.job.event(EventType.RESULT, data, **self._row_counts())
        done = sum(self.counts.values())
        self.job.set_progress(done, max(self.total, done), unit="test", checkpoint=False)

    # ---- hooks

    @pytest.hookimpl(trylast=True)
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._record(
                {
                    "nodeid": report.nodeid or ".",
                    "outcome": TestOutcome.ERROR.value,
                    "duration": 0.0,
                    "message": _message(report) or "collection failed",
                }
            )

    def _collected(self, total: int) -> None:
        self.total = total + self.counts[TestOutcome.ERROR]
        self.job.event(EventType.COLLECTION, {"total": self.total}, **self._row_counts())
        self.job.set_progress(sum(self.counts.values()), self.total, unit="test", checkpoint=False)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not self.config.pluginmanager.has_plugin("dsession"):  # xdist reports below
            self._collected(len(session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if not self.total:  # every xdist worker collects the same ids
            self._collected(len(ids))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        test = self.tests.setdefault(report.nodeid, _Test())
        test.add(report)
        if report.when == "teardown":
            del self.tests[report.nodeid]
            self._record(test.data(report.nodeid))
            dsession = self.config.pluginmanager.getplugin("dsession")
            if dsession is not None and self.job.should_stop():
                dsession.shouldstop = "jobctl: stop requested"  # xdist's controller stops workers

    def _stop_here(self, session: pytest.Session) -> None:
        """No further test: pytest ends the loop (exit code 2) after the current one."""
        session.shouldstop = "jobctl: stop requested"
        if not self.stopping:
            self.stopping = True
            # nothing is left to interrupt: a late SIGINT rung must not cut the summary short
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> bool | None:
        """Between tests: wait while the job is paused; after a stop, run no further test."""
        if not self.stopping:
            try:
                self.job.checkpoint(f"before {item.nodeid}")  # blocks while paused
            except jc.Cancelled:
                self._stop_here(item.session)
        if self.stopping:
            return True  # this test is not run (nor reported): the session ends here
        return None

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        # a stop during this test: the loop ends after it (the last test included: exit 2);
        # an xdist controller runs no test (its workers are stopped through dsession)
        xdist = self.config.pluginmanager.has_plugin("dsession")
        if self.session is not None and not xdist and self.job.should_stop():
            self._stop_here(self.session)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.session = session

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.summarise(int(exitstatus))

    def _interrupted(self) -> None:
        """Tests that began and never finished: a SIGINT (the stop ladder's) cut them off."""
        stopped = self.job.should_stop()
        for nodeid, test in list(self.tests.items()):
            del self.tests[nodeid]
            data = test.data(nodeid)
            data["outcome"] = TestOutcome.ERROR.value
            data["message"] = (
                "Interrupted: the batch was stopped while this test ran "
                "(SIGINT at interrupt_after)."
                if stopped
                else "Interrupted (KeyboardInterrupt) while this test ran."
            )
            self._record(data)

    def summarise(self, exit_code: int) -> None:
        if self.summarised:
            return
        self.summarised = True
        self._interrupted()
        data: dict[str, Any] = {"counts": dict(self.counts), "exit_code": exit_code}
        if exit_code == EXIT_STOPPED and self.job.should_stop():
            done = sum(self.counts.values())
            data["stopped"] = True
            data["message"] = f"Stopped by request after {done} of {max(self.total, done)} tests."
        elif exit_code not in (0, 1):
            data["error"] = EXIT_MEANING.get(exit_code, f"pytest exited with code {exit_code}")
        self.job.event(EventType.SUMMARY, data, **self._row_counts())
        self.job.flush()


_reporter: JobctlReporter | None = None


def _zero_counts() -> dict[str, int]:
    """Tests per outcome, keyed by the outcomes' plain strings (the summary's ``counts``)."""
    return {outcome.value: 0 for outcome in TestOutcome}


def pytest_configure(config: pytest.Config) -> None:
    global _reporter
    if hasattr(config, "workerinput"):  # an xdist worker: the controller reports
        return
    _reporter = JobctlReporter(config)
    config.pluginmanager.register(_reporter, "jobctl-reporter")


def ensure_summary(exit_code: int) -> None:
    """Called by the worker after pytest returns: a usage error ends before sessionfinish."""
    if _reporter is not None:
        _reporter.summarise(exit_code)
    else:
        job = jc.current()
        job.event(
            EventType.SUMMARY,
            {
                "counts": _zero_counts(),
                "exit_code": exit_code,
                "error": EXIT_MEANING.get(exit_code, "pytest failed to start"),
            },
        )
