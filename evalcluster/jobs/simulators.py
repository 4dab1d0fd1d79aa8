"""Start the local simulator behind every provider of `kind: simulated` for one run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from evalcluster.suite.models import ProviderConfig

# What each wire format's official SDK calls base_url, relative to the simulator's root.
_BASE_PATH = {"openai": "/v1", "anthropic": "", "gemini": ""}


@contextlib.contextmanager
def started_simulators(providers: dict[str, ProviderConfig]) -> Iterator[dict[str, ProviderConfig]]:
    """Yield the providers with each simulated one pointed at a freshly started simulator."""
    simulated = {n: p for n, p in providers.items() if p.kind == "simulated" and not p.base_url}
    if not simulated:
        yield providers
        return
    from evalcluster.simulator import SimulatorConfig, SimulatorProcess

    resolved = dict(providers)
    with contextlib.ExitStack() as stack:
        for name, provider in simulated.items():
            options = provider.simulator
            config = SimulatorConfig(
                latency_ms=options.latency_ms,
                jitter_ms=options.jitter_ms,
                rpm=options.rpm,
                tpm=options.tpm,
                error_rate=options.error_rate,
                accuracy=options.accuracy,
                seed=options.seed,
                correlation=options.correlation,
                cluster_pattern=options.cluster_pattern,
                cluster_correlation=options.cluster_correlation,
            )
            sim = stack.enter_context(SimulatorProcess(config))
            base_url = sim.url + _BASE_PATH[options.format]
            resolved[name] = provider.model_copy(update={"base_url": base_url})
        yield resolved
