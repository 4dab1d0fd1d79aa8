"""The request and result types pickle as tuples and lose no field on the way."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, fields

import pytest

from evalcluster.pickling import pickled_as_tuple
from evalcluster.providers.base import CompletionRequest, Message
from evalcluster.providers.calls import CallResult


def test_every_field_survives_a_round_trip() -> None:
    result = CallResult("p", 2, 1.5, "42", "stop", 7, 3, True, 0.01, "timeout", "slow")
    request = CompletionRequest("m", (Message("system", "s"), Message("user", "u")), {"seed": 1})
    for value in (result, request, request.messages[0]):
        copy = pickle.loads(pickle.dumps(value, protocol=5))
        assert copy == value
        assert [getattr(copy, f.name) for f in fields(copy)] == [
            getattr(value, f.name) for f in fields(value)
        ]


def test_a_single_field_class_is_refused() -> None:
    with pytest.raises(TypeError, match="2\\+ fields"):

        @pickled_as_tuple
        @dataclass(frozen=True, slots=True)
        class One:
            value: int
