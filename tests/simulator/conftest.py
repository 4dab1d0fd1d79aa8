from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from evalcluster.simulator import SimulatorConfig, SimulatorThread


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig()) as sim:
        yield sim


@pytest.fixture
def sim(shared_sim: SimulatorThread) -> Iterator[SimulatorThread]:
    """The module's simulator with default config and zeroed stats for each test."""
    shared_sim.reconfigure(**SimulatorConfig().model_dump())
    shared_sim.reset_stats()
    yield shared_sim


@pytest.fixture(scope="session")
def client() -> Iterator[httpx.Client]:
    """One client for the session: building one (and its TLS context) is slow."""
    with httpx.Client(timeout=10) as c:
        yield c
