"""The status values of an evaluation run, one name for every layer that reads or writes them
(the manifest, the live-run registry, the driver, the HTTP service, MLflow's mapping).

A `StrEnum`: each member is the string it stands for, so the manifest's JSON, the HTTP answers
and comparisons with plain strings are what they were. The HTTP service adds ``interrupted``
(a run whose driver is gone) when it composes a status; that value is never stored.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class RunState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"
    BUDGET_EXHAUSTED = "budget_exhausted"


# The type of a stored status field (the manifest's): the members as a Literal, so that pydantic
# takes a member or its string and writes the string back; a `RunState` field would warn when a
# plain string is set by `model_copy(update=...)`, which skips validation.
RunStateLiteral = Literal[
    RunState.PENDING,
    RunState.RUNNING,
    RunState.FINISHED,
    RunState.FAILED,
    RunState.KILLED,
    RunState.BUDGET_EXHAUSTED,
]

# A run in one of these has ended: its manifest and summary are final.
TERMINAL_STATES: frozenset[RunState] = frozenset(
    {RunState.FINISHED, RunState.FAILED, RunState.KILLED, RunState.BUDGET_EXHAUSTED}
)
# Not yet ended: the live-run registry stamps no finish time while in one of these.
ACTIVE_STATES: frozenset[RunState] = frozenset({RunState.PENDING, RunState.RUNNING})


def is_terminal(status: str | None) -> bool:
    """Whether `status` says the run has ended."""
    return status in TERMINAL_STATES
