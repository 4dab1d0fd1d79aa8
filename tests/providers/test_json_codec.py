"""Request bodies and response JSON: orjson where it can, the standard library where only it can."""

from __future__ import annotations

import json

import pytest

from evalcluster.providers.error_mapping import NOT_JSON, decode_json
from evalcluster.providers.transport import encode_json


def test_a_request_body_is_compact_utf8_json() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Grüße, 世界"}], "n": 1.5}
    data = encode_json(body)
    assert json.loads(data) == body
    assert b" " not in data.replace(b"Gr\xc3\xbc\xc3\x9fe, ", b"")  # compact separators
    assert "Grüße, 世界".encode() in data  # UTF-8, not \u escapes


@pytest.mark.parametrize(
    "body", [{1: "integer key"}, {"big": 2**70}], ids=["non-string key", "int over 64 bits"]
)
def test_what_orjson_refuses_is_still_encoded(body: dict) -> None:
    assert json.loads(encode_json(body)) == json.loads(json.dumps(body))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a": [1, 2.5, "x"]}', {"a": [1, 2.5, "x"]}),
        (b'\xef\xbb\xbf{"bom": true}', {"bom": True}),
        ('{"utf16": 1}'.encode("utf-16"), {"utf16": 1}),
        (b'{"big": 1180591620717411303424}', {"big": 2**70}),
    ],
    ids=["plain", "byte-order mark", "utf-16", "int over 64 bits"],
)
def test_responses_decode_as_the_standard_library_reads_them(raw: bytes, expected: object) -> None:
    assert decode_json(raw) == expected


def test_nan_from_a_provider_is_read_as_the_standard_library_reads_it() -> None:
    value = decode_json(b'{"score": NaN}')
    assert value["score"] != value["score"]


@pytest.mark.parametrize("raw", [b"", b"   ", b"<html>502</html>", b'{"cut": ', b"\xff\xfe\x00"])
def test_empty_or_broken_bodies_are_not_json(raw: bytes) -> None:
    assert decode_json(raw) is NOT_JSON
