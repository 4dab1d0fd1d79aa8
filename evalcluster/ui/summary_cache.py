"""A replica's cache of run summaries: a finished run's summary is computed once.

A summary depends only on the run's committed shard files, its review labels and the suite's
`group_by`; labels are append-only, so their count says whether a new one arrived. The key is
therefore (store, run, shard keys, label count, group_by): a new shard or a new label makes a
new key, so a running run or a freshly labelled one is never served a stale summary.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["CACHE_SUMMARIES", "SummaryCache", "summary_key"]

CACHE_SUMMARIES = 32


def summary_key(
    store_uri: str,
    run_id: str,
    shard_keys: tuple[str, ...],
    labels: int,
    group_by: tuple[str, ...],
) -> tuple[Hashable, ...]:
    return (store_uri, run_id, shard_keys, labels, group_by)


class SummaryCache:
    """A small LRU of computed summaries; each caller gets its own top-level dict to add to
    (the nested figures are shared and must not be changed)."""

    def __init__(self, size: int = CACHE_SUMMARIES) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[Hashable, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, key: tuple[Hashable, ...], compute: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return dict(found)
            self.misses += 1
        value = compute()  # outside the lock: two first requests may both compute, once each
        with self._lock:
            # An older key of the same run (fewer shards or labels) will never be asked again.
            for old in [k for k in self._entries if k[:2] == key[:2]]:
                del self._entries[old]
            self._entries[key] = value
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return dict(value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0
