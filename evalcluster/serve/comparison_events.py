"""The ``comparison`` message of a run's event stream (routes_events.py): a `compare:` run's
latest look, read from its manifest, which the driver rewrites at most every 2 seconds."""

from __future__ import annotations

import time
from typing import Any

from evalcluster.serve.context import ServiceContext
from evalcluster.store.manifest import read_manifest

POLL_S = 2.0  # the manifest's own flush interval (jobs/driver.py MANIFEST_FLUSH_S)
# The look-by-look path stays in GET /v1/runs/{id} and the summary; events carry the latest.
_LEFT_OUT = frozenset({"path", "state"})


def comparison_event(run_id: str, comparison: dict[str, Any]) -> dict[str, Any]:
    """``{"type": "comparison", "run_id", "verdict", "difference", "lower", "upper", ...}``."""
    compact = {k: v for k, v in comparison.items() if k not in _LEFT_OUT}
    return {"type": "comparison", "run_id": run_id, **compact}


class ComparisonWatch:
    """Reads a run's manifest at most every POLL_S while the run may be a comparison; gives
    an event each time the comparison has moved on. Stops reading once the manifest shows a
    suite without `compare:`."""

    def __init__(self, ctx: ServiceContext, run_id: str) -> None:
        self.ctx, self.run_id = ctx, run_id
        self._compares: bool | None = None  # unknown until a manifest is read
        self._read_at = -POLL_S
        self._last: dict[str, Any] | None = None

    async def next_event(self) -> dict[str, Any] | None:
        if self._compares is False or time.monotonic() - self._read_at < POLL_S:
            return None
        self._read_at = time.monotonic()
        try:
            manifest = await self.ctx.call(read_manifest, self.ctx.store, self.run_id)
        except Exception:  # noqa: BLE001 - a progress stream must not fail on a manifest read
            return None
        if manifest is None:
            return None
        self._compares = bool(manifest.spec.get("compare"))
        if manifest.comparison is None:
            return None
        event = comparison_event(self.run_id, manifest.comparison)
        if event == self._last:
            return None
        self._last = event
        return event
