import asyncio

from evalcluster.simulator import SimulatorThread
from evalcluster.simulator.bench import drive


def test_drive_keeps_requests_in_flight_and_counts_them():
    with SimulatorThread() as sim:
        ok, failed = asyncio.run(drive(sim.url, seconds=0.3, concurrency=8))
        assert ok > 0 and failed == 0
        assert sim.stats()["by_outcome"]["ok"] == ok


def test_send_all_answers_every_body_and_refuses_an_error_answer():
    from evalcluster.simulator.bench import send_all

    body = {"model": "sim-1", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}
    with SimulatorThread() as sim:
        seconds = asyncio.run(send_all(sim.url, [body] * 20, in_flight=4))
        assert seconds > 0
        assert sim.stats()["by_outcome"]["ok"] == 20
        try:
            asyncio.run(send_all(sim.url, [{"messages": "not a list"}], in_flight=1))
        except RuntimeError as exc:
            assert "HTTP 4" in str(exc)
        else:
            raise AssertionError("an error answer passed")
