"""A provider simulator: a real HTTP server speaking the OpenAI, Anthropic and Gemini wire
formats, so the whole product is tested over real HTTP with no network and no keys.

    from evalcluster.simulator import SimulatorConfig, SimulatorThread
    with SimulatorThread(SimulatorConfig(rpm=600, accuracy=1.0)) as sim:
        ...  # OpenAI base_url: sim.url + "/v1"; Anthropic and Gemini: sim.url

Answers come from `model.answer`, usage from `tokens.count_tokens`: both public so callers
can predict exactly what the server reports.
"""

from evalcluster.simulator.config import FORCE_KINDS, ForceKind, SimulatorConfig
from evalcluster.simulator.model import answer
from evalcluster.simulator.runner import SimulatorProcess, SimulatorThread
from evalcluster.simulator.tokens import count_tokens

__all__ = [
    "FORCE_KINDS",
    "ForceKind",
    "SimulatorConfig",
    "SimulatorProcess",
    "SimulatorThread",
    "answer",
    "count_tokens",
]
