"""Samples and the requests rendered from them, with their cache identity.

A request's hash covers everything that decides the provider's answer: provider kind and
endpoint, model,
generation parameters, the rendered messages and, when the answer is sampled (temperature above
zero or unset, or several epochs), the epoch and the suite's seed. Equal hashes may share one
answer; the response cache relies on that.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from evalcluster.providers.base import CompletionRequest, Message
from evalcluster.spec.datasets import cell_to_text, iter_batches
from evalcluster.spec.loader import LoadedSuite
from evalcluster.spec.models import ProviderConfig, TargetSpec


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
        yield SampleBatch(index, _to_samples(batch, row, source.id, source.target, source.metadata))
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
    return CompletionRequest(target.model, tuple(messages), params)


def is_sampling(params: dict[str, Any], epochs: int) -> bool:
    temperature = params.get("temperature")
    return epochs > 1 or temperature is None or temperature > 0


def endpoint_identity(provider: ProviderConfig) -> str:
    """What names the model server: two endpoints of one kind may serve different weights
    under the same model name. A simulator's address changes every run, so it is named by the
    options that decide its answers instead."""
    if provider.kind == "simulated":
        options = provider.simulator
        return f"simulated:{options.format}:{options.accuracy}:{options.seed}"
    if provider.kind == "custom" and provider.custom is not None:
        return f"custom:{provider.custom.url}"
    return f"{provider.kind}:{provider.base_url or 'default'}"


def request_hash(
    provider: ProviderConfig, request: CompletionRequest, *, epoch: int, seed: int, sampling: bool
) -> str:
    identity: dict[str, Any] = {
        "kind": provider.kind,
        "endpoint": endpoint_identity(provider),
        "model": request.model,
        "params": request.params,
        "messages": [[m.role, m.content] for m in request.messages],
    }
    if sampling:
        identity["epoch"] = epoch
        identity["seed"] = seed
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
