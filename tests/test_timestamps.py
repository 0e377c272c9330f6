"""The fast ISO formatter must agree with datetime to the character."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from jupyter_jobctl.core.timestamps import iso


def reference(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_iso_matches_datetime_including_rounding_edges() -> None:
    rng = random.Random(7)
    values = [rng.uniform(0, 4e9) for _ in range(50_000)]
    # halves of a microsecond and the last microsecond of a second: where rounding bites
    values += [rng.randint(0, 2**31) + k / 1e6 + 5e-7 for k in range(0, 1_000_000, 97)]
    values += [1.9999995, 1_700_000_000.9999995, 1_700_000_000.0004995, 0.0, -1.5]
    assert [v for v in values if iso(v) != reference(v)] == []
    assert iso(None) is None
    assert iso(1_763_900_000.5) == "2025-11-23T12:13:20.500Z"
