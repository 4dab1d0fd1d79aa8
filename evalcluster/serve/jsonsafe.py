"""Values made fit for JSON, which has no NaN, no infinities, no timestamps and no bytes."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any


def json_safe(value: Any) -> Any:
    """`value` with timestamps in ISO 8601, NaN and infinities as null, bytes as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
