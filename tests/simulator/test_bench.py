import asyncio

from evalcluster.simulator import SimulatorThread
from evalcluster.simulator.bench import drive


def test_drive_keeps_requests_in_flight_and_counts_them():
    with SimulatorThread() as sim:
        ok, failed = asyncio.run(drive(sim.url, seconds=0.3, concurrency=8))
        assert ok > 0 and failed == 0
        assert sim.stats()["by_outcome"]["ok"] == ok
