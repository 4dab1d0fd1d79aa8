"""Fixtures of the whole-run tests: the executor a run gets, so the driver's key tests run
on both paths (`jobs/executors.py`)."""

from __future__ import annotations

import pytest

EXECUTORS = ("ray", "local")


@pytest.fixture(params=EXECUTORS)
def executor(request) -> str:
    """`ray` (a real local Ray for the module, the `local_ray` fixture) or `local` (this
    process, no Ray); pass it as `RunOptions(executor=...)` or `--executor`."""
    if request.param == "ray":
        request.getfixturevalue("local_ray")
    return request.param


@pytest.fixture(params=EXECUTORS)
def cli_executor(request) -> str:
    """The value of `--executor` for a run started as a command (its own process: no Ray is
    started here for it)."""
    return request.param
