"""Samples and the requests rendered from them, with their cache identity.

A request's hash covers everything that decides the provider's answer: the provider's whole
configuration save the fields known not to change what is sent or how the answer is read
(`endpoint_identity`), the model, generation parameters, the rendered messages and, when the
answer is sampled (temperature above zero or unset, or several epochs), the epoch and the suite's
seed. Equal hashes may share one answer; the response cache relies on that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from evalcluster.providers.base import CompletionRequest, Message
from evalcluster.providers.registry import adapter_class
from evalcluster.suite.datasets import cell_to_text, iter_batches
from evalcluster.suite.loader import LoadedSuite
from evalcluster.suite.models import ProviderConfig, TargetSpec


@dataclass(frozen=True)
class Sample:
    sample_id: str
    fields: dict[str, Any]  # every dataset column, for templates and custom scorers
    reference: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class SampleBatch:
    """One shard's worth of consecutive samples."""

    index: int
    samples: list[Sample]


def iter_sample_batches(
    suite: LoadedSuite, *, max_samples: int | None = None
) -> Iterator[SampleBatch]:
    """Stream the dataset as shards of `shard_size` samples, in order, up to `max_samples`."""
    source = suite.spec.dataset
    size = suite.spec.shard_size
    row = 0
    for index, batch in enumerate(iter_batches(suite.dataset, size)):
        if max_samples is not None and row >= max_samples:
            return
        if max_samples is not None:
            batch = batch.slice(0, max_samples - row)
        kept = [
            *source.metadata,
            *[c for c in [suite.spec.cluster] if c and c not in source.metadata],
        ]
        yield SampleBatch(index, _to_samples(batch, row, source.id, source.target, kept))
        row += batch.num_rows


def _to_samples(
    batch: pa.RecordBatch,
    first_row: int,
    id_col: str | None,
    target_col: str | None,
    metadata_cols: list[str],
) -> list[Sample]:
    samples = []
    for offset, fields in enumerate(batch.to_pylist()):
        sample_id = cell_to_text(fields[id_col]) if id_col else str(first_row + offset)
        reference = cell_to_text(fields[target_col]) if target_col else None
        metadata = {c: fields[c] for c in metadata_cols}
        samples.append(Sample(sample_id, fields, reference, metadata))
    return samples


def count_samples(suite: LoadedSuite, *, max_samples: int | None = None) -> int:
    total = 0
    for batch in iter_batches(suite.dataset, 65536):
        total += batch.num_rows
    return total if max_samples is None else min(total, max_samples)


class _TemplateFields(dict):
    def __missing__(self, key: str) -> str:  # columns were checked at load; be safe anyway
        raise KeyError(f"template variable {{{key}}} has no value in this sample")


def render_prompt(template: str, fields: dict[str, Any]) -> str:
    values = _TemplateFields({k: cell_to_text(v) for k, v in fields.items()})
    return template.format_map(values)


def build_request(
    suite: LoadedSuite,
    target: TargetSpec,
    sample: Sample,
    *,
    params: dict[str, Any] | None = None,
) -> CompletionRequest:
    """The target's request for `sample`. `params` is `target.params.as_dict()`, passed in by
    callers that build many requests (dumping the pydantic model per sample is not free)."""
    spec = suite.spec
    messages = []
    if spec.system:
        messages.append(Message("system", render_prompt(spec.system, sample.fields)))
    messages.append(Message("user", render_prompt(spec.prompt, sample.fields)))
    if params is None:
        params = target.params.as_dict()
    # The reference rides along for a simulated provider's adapter only (see CompletionRequest)
    # and stays out of `request_hash`: it is a function of the sample, as the prompt is.
    return CompletionRequest(target.model, tuple(messages), params, sample.reference)


def is_sampling(params: dict[str, Any], epochs: int) -> bool:
    temperature = params.get("temperature")
    return epochs > 1 or temperature is None or temperature > 0


# ProviderConfig fields that change neither what is sent nor how the answer is read: limits,
# resilience, prices, where the key is found, network policy. Every other field is part of the
# endpoint's identity, a field added later included, so forgetting to list one here can only
# cost cache hits, never serve one endpoint's answers for another's.
NOT_IDENTITY = frozenset(
    {
        "rpm",
        "tpm",
        "burst_s",
        "max_concurrency",
        "timeout_s",
        "breaker",
        "retry",
        "fallback",
        "pricing",
        "api_key_env",
        "api_key_file",
        "allow_private_network",
        "from_client",  # set by the service on a client's providers: network policy only
        "client_networks",  # the same
        "mode",  # the same request by batch or not: the answer is the same
        "batch",  # how batches are gathered and polled
        "prompt_cache",  # a cache_control mark changes the price, not the answer
    }
)
# The simulator's pure timing, rate and error options (errors are never cached).
SIMULATOR_NOT_IDENTITY = frozenset({"latency_ms", "jitter_ms", "rpm", "tpm", "error_rate"})
# Blocks that only one kind reads: `custom` is the custom adapter's spec, `simulator` the
# options of a simulated provider; any other kind ignores them.
KIND_ONLY = {"custom": "custom", "simulator": "simulated"}


def endpoint_identity(provider: ProviderConfig) -> str:
    """The provider's part of a request's identity: canonical JSON of every field that may
    change what is sent or how the answer is read (all but NOT_IDENTITY), defaults written
    out, so that omitting a field and writing its default are one identity.

    Pass the config as the suite gave it: a simulated provider without base_url gets one from
    the run (a fresh simulator, a new port every run), and that address must not enter the
    identity, or no answer would outlive its run; a base_url the suite gives is kept, as for
    every kind. The result may hold header values: hash it, never store it.
    """
    fields = type(provider).model_fields
    exclude: dict[str, Any] = {name: True for name in NOT_IDENTITY if name in fields}
    for name, kind in KIND_ONLY.items():
        if name in fields and provider.kind != kind:
            exclude[name] = True
    if provider.kind == "simulated":
        exclude["simulator"] = set(
            SIMULATOR_NOT_IDENTITY & type(provider.simulator).model_fields.keys()
        )
    identity = provider.model_dump(mode="json", exclude=exclude)
    identity["base_url"] = _base_url(provider)
    return json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _base_url(provider: ProviderConfig) -> str | None:
    """The address the adapter sends to: the kind's default when unset, no trailing slash."""
    base_url = provider.base_url
    if not base_url and provider.kind != "simulated":  # a simulator has no default
        base_url = getattr(adapter_class(provider.kind), "default_base_url", None)
    return base_url.rstrip("/") if base_url else base_url


def request_hash(
    provider: ProviderConfig | str,
    request: CompletionRequest,
    *,
    epoch: int,
    seed: int,
    sampling: bool,
) -> str:
    """The request's cache key. `provider` is the config as the suite gave it, or its
    `endpoint_identity` computed once (callers that hash many requests pass that)."""
    endpoint = provider if isinstance(provider, str) else endpoint_identity(provider)
    identity: dict[str, Any] = {
        "endpoint": endpoint,
        "model": request.model,
        "params": request.params,
        "messages": [[m.role, m.content] for m in request.messages],
    }
    if sampling:
        identity["epoch"] = epoch
        identity["seed"] = seed
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
