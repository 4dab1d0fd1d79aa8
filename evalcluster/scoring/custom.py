"""The `custom` scorer: a user function named ``"module:function"``.

The function is imported when the suite is built (so a typo fails the run before any model is
called) and again on each worker, which therefore needs the module on its path (ship it with
``--working-dir`` or install it). It is called as ``function(output, reference, sample,
**kwargs)`` and returns a float, a bool, a `Score` or None (not scorable).

An exception inside the function does not stop the run: that row gets no score (None) and
the exception's type and message as the explanation, so one odd output cannot sink a shard.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field, field_validator

from evalcluster.errors import SpecError
from evalcluster.scoring.base import Score, ScorerOptions, coerce_score
from evalcluster.scoring.registry import register_scorer

ScoreFunction = Callable[..., object]


def import_function(reference: str) -> ScoreFunction:
    """Import ``"package.module:attr.path"``; raises SpecError (field ``function``) on failure."""
    module_name, sep, attr_path = reference.partition(":")
    if not sep or not module_name or not attr_path:
        raise SpecError(f"expected 'module:function', got {reference!r}", field="function")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # whatever the module raises while importing is a setup problem
        raise SpecError(
            f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}", field="function"
        ) from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise SpecError(
                f"module {module_name!r} has no attribute {attr_path!r}", field="function"
            ) from None
    if not callable(target):
        raise SpecError(f"{reference!r} is not callable", field="function")
    return target


class CustomOptions(ScorerOptions):
    function: str = Field(description="'module:function' importable by the workers.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra keyword arguments.")

    @field_validator("function")
    @classmethod
    def _shape(cls, value: str) -> str:
        if value.count(":") != 1 or value.startswith(":") or value.endswith(":"):
            raise ValueError(f"expected 'module:function', got {value!r}")
        return value


@register_scorer("custom", options=CustomOptions)
class CustomScorer:
    """Delegates to a user function; see the module docstring for its contract."""

    needs_judge = False

    def __init__(self, name: str, options: CustomOptions) -> None:
        self.name = name
        self.function_ref = options.function
        self.kwargs = dict(options.kwargs)
        self.function = import_function(options.function)

    def score(self, output: str, reference: str | None, sample: Mapping[str, Any]) -> Score:
        try:
            result = self.function(output, reference, sample, **self.kwargs)
        except Exception as exc:  # see the module docstring: a row's failure stays in its row
            return Score(None, f"{self.function_ref} raised {type(exc).__name__}: {exc}")
        return coerce_score(result, self.function_ref)

    def __getstate__(self) -> dict[str, Any]:
        # Workers re-import the function by name rather than unpickling it.
        return {"name": self.name, "function_ref": self.function_ref, "kwargs": self.kwargs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["name"], CustomOptions(function=state["function_ref"], kwargs=state["kwargs"])
        )
