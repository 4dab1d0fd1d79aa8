"""Result cells made JSON: the lake holds timestamps and may hold NaN."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from evalcluster.serve.jsonsafe import json_safe


def test_values_json_cannot_carry_become_null_or_text():
    row = {
        "score": float("nan"),
        "big": float("inf"),
        "ok": 0.5,
        "n": 3,
        "flag": True,
        "at": datetime(2026, 11, 26, 12, 0, tzinfo=UTC),
        "day": date(2026, 11, 26),
        "raw": b"\xffok",
        "nested": {"xs": [float("-inf"), 1.0, (2, None)]},
    }
    safe = json_safe(row)
    assert safe == {
        "score": None,
        "big": None,
        "ok": 0.5,
        "n": 3,
        "flag": True,
        "at": "2026-11-26T12:00:00+00:00",
        "day": "2026-11-26",
        "raw": "\ufffdok",
        "nested": {"xs": [None, 1.0, [2, None]]},
    }
    json.dumps(safe, allow_nan=False)
