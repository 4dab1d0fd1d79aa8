"""Where things live in the store: the one place that spells out the lake's keys.

```
suites/<name>/<version>.yaml                          immutable suite versions
runs/run_id=<id>/_manifest.json                       spec, versions, code version, status, shards
runs/run_id=<id>/target=<name>/shard-<k>.parquet      one row per sample x target x epoch
runs/run_id=<id>/_summary.json                        aggregates per target and scorer
runs/run_id=<id>/_owner.json                          HTTP runs: tenant, suite, options
tenants/<tenant>/suites/<name>/<version>.yaml         suites submitted over HTTP, per tenant
tenants/<tenant>/datasets/...                         datasets uploaded over HTTP
audit/<yyyy-mm-dd>/<time>-<id>.json                   who did what through the service
```

The run-level JSON files start with ``_`` because pyarrow's dataset discovery reads every file
under ``runs/`` as Parquet except names starting with ``.`` or ``_`` (a ``manifest.json`` there
makes ``pyarrow.dataset.dataset("runs", format="parquet")`` fail), and DuckDB's
``runs/*/*/*.parquet`` glob never reaches them.

Run ids and target names are hive partition values, so they must read back as strings in every
reader: DuckDB turns ``20261126`` into BIGINT, ``2026-11-26`` or ``epoch`` into DATE and
``1-2-3`` into TIMESTAMP, pyarrow turns ``123`` or ``0x10`` into int32, and then the partition
column no longer matches the string column of the same name inside the files.
`check_partition_value` refuses such values up front.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from evalcluster.errors import StoreError

# The store of the command line and the service when none is given.
DEFAULT_STORE = "./evalstore"

RUNS_PREFIX = "runs/"
SUITES_PREFIX = "suites/"
TENANTS_PREFIX = "tenants/"
AUDIT_PREFIX = "audit/"

_CHARSET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_NO_LETTERS = re.compile(r"^[0-9._+-]*$")  # integers, decimals, dates, timestamps
_RADIX_INT = re.compile(r"^0[xXbBoO][0-9a-fA-F_]+$")  # 0x10, 0b101, 0o17
_EXPONENT = re.compile(r"^[0-9._]*[eE][+-]?[0-9_]+$")  # 1e5
_DATE_TIME = re.compile(r"^\d{1,4}-\d{1,2}-\d{1,2}[Tt].*$")  # 2026-11-26T10
# Words that parse as numbers or dates somewhere (DuckDB's DATE takes epoch and infinity).
_TYPED_WORDS = {
    "inf", "infinity", "nan", "epoch", "true", "false", "null", "none",
    "now", "today", "tomorrow", "yesterday", "allballs",
}  # fmt: skip


def check_name(what: str, value: str) -> str:
    """Return `value` if it is a valid name for one key segment, else raise StoreError.

    Allowed: letters, digits, ``.``, ``_`` and ``-``, at most 128, starting with a letter or
    digit (the suite file's rule for names).
    """
    if not isinstance(value, str) or not _CHARSET.match(value):
        raise StoreError(
            f"invalid {what} {value!r}: use letters, digits, '.', '_' or '-' (at most 128, "
            "starting with a letter or digit)"
        )
    return value


def check_partition_value(column: str, value: str) -> str:
    """Return `value` if it can be the hive partition value of `column`, else raise StoreError.

    A valid `check_name` that no reader would take for a number, date or boolean.
    """
    check_name(column, value)
    if (
        _NO_LETTERS.match(value)
        or _RADIX_INT.match(value)
        or _EXPONENT.match(value)
        or _DATE_TIME.match(value)
        or value.lower() in _TYPED_WORDS
    ):
        raise StoreError(
            f"invalid {column} {value!r}: it reads as a number, date or boolean in DuckDB or "
            "pyarrow's hive partitioning; add a letter (e.g. 'run-...')"
        )
    return value


def check_run_id(run_id: str) -> str:
    """Return `run_id` if a run may have it, else raise StoreError: the one rule for run ids
    (command line, HTTP, manifests), that of a partition value."""
    return check_partition_value("run_id", run_id)


def is_valid_run_id(run_id: str) -> bool:
    """Whether a run could have this id (`check_run_id` as a yes or no)."""
    try:
        check_run_id(run_id)
    except StoreError:
        return False
    return True


def run_prefix(run_id: str) -> str:
    """``runs/run_id=<id>/``: the folder of one run."""
    return f"{RUNS_PREFIX}run_id={check_partition_value('run_id', run_id)}/"


def target_prefix(run_id: str, target: str) -> str:
    """``runs/run_id=<id>/target=<name>/``: the shards of one target."""
    return f"{run_prefix(run_id)}target={check_partition_value('target', target)}/"


def shard_key(run_id: str, target: str, index: int) -> str:
    """The key of shard `index` of `target` in run `run_id`."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise StoreError(f"invalid shard index {index!r}: a non-negative integer")
    return f"{target_prefix(run_id, target)}shard-{index}.parquet"


def manifest_key(run_id: str) -> str:
    """The key of a run's manifest."""
    return f"{run_prefix(run_id)}_manifest.json"


def summary_key(run_id: str) -> str:
    """The key of a run's summary."""
    return f"{run_prefix(run_id)}_summary.json"


def owner_key(run_id: str) -> str:
    """The key of a run's owner record (runs started over HTTP)."""
    return f"{run_prefix(run_id)}_owner.json"


def tenant_prefix(tenant: str) -> str:
    """``tenants/<tenant>/``: what the service keeps for one tenant."""
    return f"{TENANTS_PREFIX}{check_name('tenant name', tenant)}/"


class ShardFile(NamedTuple):
    """One committed shard of a run, as found in the store."""

    target: str
    index: int
    key: str


_SHARD_KEY = re.compile(r"^runs/run_id=[^/]+/target=([^/]+)/shard-(\d+)\.parquet$")


def parse_shard_key(key: str) -> ShardFile | None:
    """The shard a key names, or None if the key is not a shard file."""
    match = _SHARD_KEY.match(key)
    if match is None:
        return None
    return ShardFile(match.group(1), int(match.group(2)), key)
