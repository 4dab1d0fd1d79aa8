"""The ``x-evalcluster-reference`` request header: a sample's reference answer, for the simulator.

A run sends it only to providers of ``kind: simulated`` (`HttpAdapter.complete` adds it; no
other kind ever gets it), so that the simulator, which sees nothing but the request, can answer
any dataset with a reference, right with probability ``accuracy`` (see `model`). The value is
the reference percent-encoded as UTF-8 (`urllib.parse.quote` with nothing safe), so any text,
newlines and non-ASCII included, fits in a header. A reference longer than
`MAX_ENCODED_LENGTH` once encoded is not sent (HTTP servers cap a header at about 8 KiB); the
simulator then answers by its prompt rules alone. The header is no part of a request's cache
identity: the reference is a function of the sample, as the prompt is.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

REFERENCE_HEADER = "x-evalcluster-reference"
MAX_ENCODED_LENGTH = 4096


def encode_reference(reference: str) -> str | None:
    """The header value for `reference`, or None when it is too long to send."""
    encoded = quote(reference, safe="")
    return encoded if len(encoded) <= MAX_ENCODED_LENGTH else None


def decode_reference(value: str) -> str:
    """The reference a header value carries. Raises ValueError if it is not UTF-8 once decoded."""
    return unquote(value, errors="strict")
