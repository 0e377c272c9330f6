"""Public path of the job manager: ``from jupyter_jobctl.manager import JobManager``.

The manager lives in ``jupyter_jobctl.engine``; this module keeps the documented import
path stable.
"""

from __future__ import annotations

from jupyter_jobctl.engine.manager import JobManager, StopPolicy, default_db_url

__all__ = ["JobManager", "StopPolicy", "default_db_url"]
