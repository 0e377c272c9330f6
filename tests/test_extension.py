"""The server extension loads from config, migrates, and reconciles jobs on start."""

from __future__ import annotations

import time

import pytest

from conftest import forge_row
from jupyter_jobctl.manager import JobManager


@pytest.fixture
def jp_server_config(sqlite_url: str):
    # an orphan left by a server that died with its job: running, processes long gone
    m = JobManager(sqlite_url)
    job, _ = m.create("command", {"argv": ["true"]})
    forge_row(
        m,
        job["id"],
        status="running",
        attempt=1,
        started_at=time.time() - 60,
        heartbeat_at=time.time() - 60,
        heartbeat_interval=1.0,
        supervisor_pid=2**22 + 1,
        supervisor_start=1,
        host=m.store.host,
        boot_id="stale",
    )
    m.close()
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_jobctl": True}},
        "JobCtl": {
            "db_url": sqlite_url,
            "stop_grace": 1.5,
            "heartbeat_interval": 0.5,
            "freeze_startup_heap": False,
        },
        "orphan": job["id"],
    }


async def test_extension_configures_and_reconciles(jp_serverapp, jp_server_config) -> None:
    manager = jp_serverapp.web_app.settings["jobctl_manager"]
    assert manager.db_url == jp_server_config["JobCtl"]["db_url"]
    assert manager.policy.stop_grace == 1.5 and manager.policy.heartbeat_interval == 0.5
    orphan = manager.get(jp_server_config["orphan"])
    assert orphan["status"] == "lost" and "gone" in orphan["reason"]


class TestStartupHeapFreeze:
    @pytest.fixture
    def jp_server_config(self, sqlite_url: str, monkeypatch):
        import gc

        from jupyter_jobctl.server import extension

        monkeypatch.setattr(extension, "FREEZE_AFTER", 0.0)
        frozen = gc.get_freeze_count()
        yield {
            "ServerApp": {"jpserver_extensions": {"jupyter_jobctl": True}},
            "JobCtl": {"db_url": sqlite_url, "freeze_startup_heap": True},  # opt-in
            "frozen_before": frozen,
        }
        gc.unfreeze()  # give pytest's heap back to the collector

    async def test_the_servers_startup_heap_is_frozen(self, jp_serverapp, jp_server_config):
        import asyncio
        import gc

        assert jp_server_config["frozen_before"] == 0
        # pytest-jupyter does not run the extensions' start hooks; the real server does
        await jp_serverapp.extension_manager.start_all_extensions()
        for _ in range(100):
            if gc.get_freeze_count() > 0:
                break
            await asyncio.sleep(0.05)
        assert gc.get_freeze_count() > 10_000  # the server's modules, handlers, traitlets
