"""A request's cache identity covers every provider field that changes what is sent or how the
answer is read, for every kind, and nothing else.

The property tests walk the fields of `ProviderConfig`, `CustomHttpConfig` and `SimulatorOptions`
themselves, against this file's own deny-list, so a field added later is checked without
touching them: it must change the key unless it is added to DENIED here (and in samples.py).
"""

from __future__ import annotations

import itertools
import math
import types
import typing
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from evalcluster.jobs.samples import endpoint_identity, iter_sample_batches, request_hash
from evalcluster.jobs.shard import ShardContext, ShardEvaluator
from evalcluster.jobs.simulators import started_simulators
from evalcluster.providers.base import CompletionRequest, Message
from evalcluster.store.cache import ResponseCache
from evalcluster.store.fs import open_store
from evalcluster.suite.loader import load_suite
from evalcluster.suite.models import (
    BUILTIN_PROVIDER_KINDS,
    CustomHttpConfig,
    ProviderConfig,
    SimulatorOptions,
)
from tests.conftest import write_suite

# Proven not to change what is sent or how the answer is read. `from_client` and
# `client_networks` (network policy of a client's provider) are checked only where the model
# has them.
DENIED = {
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
    "from_client",
    "client_networks",
    "mode",
    "batch",
    "prompt_cache",
}
SIMULATOR_DENIED = {"latency_ms", "jitter_ms", "rpm", "tpm", "error_rate"}
KINDS = tuple(sorted(BUILTIN_PROVIDER_KINDS))
# Blocks read by one kind only (and required by `custom`): walked for that kind alone.
BLOCKS = {"custom": "custom", "simulator": "simulated"}

REQUEST = CompletionRequest(
    "m-1", (Message("system", "be brief"), Message("user", "2 + 2?")), {"temperature": 0}
)


def base_config(kind: str) -> dict[str, Any]:
    """The least valid provider of `kind`."""
    config: dict[str, Any] = {"kind": kind}
    if kind == "local":
        config["base_url"] = "http://127.0.0.1:8000/v1"
    if kind == "custom":
        config["custom"] = {"url": "https://api.example.com/complete", "text_path": "text"}
    return config


def key(config: dict[str, Any] | ProviderConfig) -> str:
    provider = config if isinstance(config, ProviderConfig) else ProviderConfig(**config)
    return request_hash(provider, REQUEST, epoch=0, seed=0, sampling=False)


# -- values of any field, from its annotation ------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_URL = st.from_regex(
    r"https?://[a-z]{1,8}(\.[a-z]{2,3})?(:[1-9][0-9]{1,4})?(/[a-z0-9]{1,6}){0,2}", fullmatch=True
)
# Fields whose values the adapters normalise: any URL differs from another and from unset.
_OVERRIDES = {"base_url": st.none() | _URL, "url": _URL}


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    """A field's numeric bounds (pydantic keeps ge/gt/le/lt as annotated_types objects)."""
    bounds: dict[str, Any] = {}
    for item in metadata:
        for attr, name in (("ge", "min_value"), ("gt", "min_value"), ("le", "max_value")):
            if getattr(item, attr, None) is not None:
                bounds[name] = getattr(item, attr)
        if getattr(item, "lt", None) is not None:
            bounds["max_value"] = item.lt
    return bounds


def values(annotation: Any, bounds: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """Raw (suite-file) values of `annotation`; invalid ones are filtered by validation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    bounds = bounds or {}
    if annotation is Any:
        return _JSON
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(values(a, bounds) for a in args))
    if origin is Literal:
        return st.sampled_from(args)
    if origin is dict:
        return st.dictionaries(st.text(max_size=6), values(args[1]), max_size=3)
    if origin is list:
        return st.lists(values(args[0]), max_size=3)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = annotation.model_fields
        return st.fixed_dictionaries(
            {n: field_values(annotation, n) for n, f in fields.items() if f.is_required()},
            optional={
                n: field_values(annotation, n) for n, f in fields.items() if not f.is_required()
            },
        )
    if annotation is float:
        limits = {"min_value": -1e6, "max_value": 1e6, **bounds}
        return st.floats(allow_nan=False, allow_infinity=False, **limits)
    if annotation is int:
        limits = {"min_value": -5, "max_value": 10**6, **bounds}
        return st.integers(math.ceil(limits["min_value"]), math.floor(limits["max_value"]))
    return st.from_type(annotation)


def field_values(model: type[BaseModel], name: str) -> st.SearchStrategy[Any]:
    field = model.model_fields[name]
    if name in _OVERRIDES:
        return _OVERRIDES[name]
    return values(field.annotation, _bounds(field.metadata))


def with_value(kind: str, path: tuple[str, ...], value: Any) -> ProviderConfig | None:
    """The base provider of `kind` with the field at `path` set to `value`; None if invalid."""
    config = base_config(kind)
    node = config
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    try:
        return ProviderConfig(**config)
    except ValidationError:
        return None


# -- which fields, for which kind ------------------------------------------------------------


def _walk(denied: bool) -> list[tuple[str, tuple[str, ...], type[BaseModel], str]]:
    """(kind, path, model, field): the identity fields (denied False) or the denied ones."""
    out = []
    for kind in KINDS:
        for name in ProviderConfig.model_fields:
            if name in ("kind", *BLOCKS) or (name in DENIED) != denied:
                continue
            out.append((kind, (name,), ProviderConfig, name))
        if kind == "custom" and not denied:
            out += [
                (kind, ("custom", n), CustomHttpConfig, n) for n in CustomHttpConfig.model_fields
            ]
        if kind == "simulated":
            out += [
                (kind, ("simulator", n), SimulatorOptions, n)
                for n in SimulatorOptions.model_fields
                if (n in SIMULATOR_DENIED) == denied
            ]
        for block, reader in BLOCKS.items():
            if denied and kind != reader:  # a block another kind reads: ignored by this one
                out.append((kind, (block,), ProviderConfig, block))
    return out


IDENTITY_FIELDS = _walk(denied=False)
IGNORED_FIELDS = _walk(denied=True)


def _id(case: tuple[str, tuple[str, ...], type[BaseModel], str]) -> str:
    return f"{case[0]}-{'.'.join(case[1])}"


def test_the_walk_covers_the_fields_that_reach_the_wire():
    walked = {(kind, ".".join(path)) for kind, path, _, _ in IDENTITY_FIELDS}
    for kind in KINDS:
        for name in ("base_url", "headers", "anthropic_version", "provider_routing"):
            assert (kind, name) in walked
        assert (kind, "http_referer") in walked and (kind, "app_title") in walked
    for name in ("url", "method", "headers", "body_template", "text_path", "finish_reason_path"):
        assert ("custom", f"custom.{name}") in walked
    for name in ("input_tokens_path", "output_tokens_path"):
        assert ("custom", f"custom.{name}") in walked
    for name in ("format", "accuracy", "seed"):
        assert ("simulated", f"simulator.{name}") in walked


_SETTINGS = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)


@pytest.mark.parametrize("case", IDENTITY_FIELDS, ids=_id)
@_SETTINGS
@given(data=st.data())
def test_a_field_that_reaches_the_wire_changes_the_key(case, data):
    kind, path, model, name = case
    strategy = field_values(model, name)
    a = with_value(kind, path, data.draw(strategy, label="a"))
    b = with_value(kind, path, data.draw(strategy, label="b"))
    assume(a is not None and b is not None and a != b)
    assert key(a) != key(b), f"{kind}: {'.'.join(path)} is not part of the request's identity"


@pytest.mark.parametrize("case", IGNORED_FIELDS, ids=_id)
@_SETTINGS
@given(data=st.data())
def test_a_denied_field_leaves_the_key_alone(case, data):
    kind, path, model, name = case
    if len(path) == 1 and name in BLOCKS:  # a whole block of another kind
        annotation = model.model_fields[name].annotation
        inner = [a for a in typing.get_args(annotation) or (annotation,) if a is not type(None)]
        value = data.draw(values(inner[0]), label="block")
    else:
        value = data.draw(field_values(model, name), label="value")
    changed = with_value(kind, path, value)
    assume(changed is not None)
    assert key(changed) == key(base_config(kind))


def test_defaults_written_out_are_the_defaults_omitted():
    assert key({"kind": "anthropic"}) == key(
        {"kind": "anthropic", "anthropic_version": "2023-06-01", "headers": {}}
    )
    assert key({"kind": "openai"}) == key(
        {"kind": "openai", "base_url": "https://api.openai.com/v1/"}
    )
    assert key({"kind": "simulated"}) == key(
        {"kind": "simulated", "simulator": {"format": "openai", "accuracy": 1.0, "seed": 0}}
    )
    custom = base_config("custom")
    written = {**custom, "custom": {**custom["custom"], "method": "POST", "body_template": {}}}
    assert key(custom) == key(written)


# -- plain cases from the cache-poisoning report ---------------------------------------------


def test_custom_providers_that_read_a_different_path_do_not_share_answers():
    one = {
        "kind": "custom",
        "custom": {"url": "https://x.example/api", "text_path": "choices.0.text"},
    }
    two = {"kind": "custom", "custom": {"url": "https://x.example/api", "text_path": "answer"}}
    assert key(one) != key(two)


def test_a_suite_given_simulator_address_is_part_of_the_key():
    run_started = {"kind": "simulated"}
    elsewhere = {"kind": "simulated", "base_url": "http://sim.example:9000/v1"}
    other = {"kind": "simulated", "base_url": "http://evil.example:9000/v1"}
    assert len({key(run_started), key(elsewhere), key(other)}) == 3


class _FakeSimulator:
    """Stands in for `SimulatorProcess`: every one listens on a new port."""

    ports = itertools.count(41001)

    def __init__(self, config: Any):
        self.url = f"http://127.0.0.1:{next(self.ports)}"

    def __enter__(self) -> _FakeSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _run_keys(suite, providers, store) -> tuple[list[str], str]:
    """The hashes and cache part a shard of `suite` uses with the run's `providers`."""
    ctx = ShardContext("run-1", suite, store, providers, live=None)
    evaluator = ShardEvaluator(ctx, "t", 0)
    batch = next(iter_sample_batches(suite))
    hashes = [c.hash for c in evaluator._calls(batch.samples)]
    part = ResponseCache.part_key(suite, ctx.target("t"), ctx.endpoint("sim"), 0)
    return hashes, part


def _simulated_suite(tmp_path, name: str, provider: dict[str, Any]):
    path = write_suite(
        tmp_path,
        name=name,
        samples=4,
        providers={"sim": provider},
        targets=[{"name": "t", "provider": "sim", "model": "m", "params": {"temperature": 0}}],
    )
    return load_suite(path)


def test_a_run_started_simulator_address_never_enters_the_key(tmp_path, monkeypatch):
    import evalcluster.simulator

    monkeypatch.setattr(evalcluster.simulator, "SimulatorProcess", _FakeSimulator)
    store = open_store(str(tmp_path / "store"))
    suite = _simulated_suite(tmp_path, "sim-run", {"kind": "simulated"})
    runs = []
    for _ in range(2):
        with started_simulators(suite.spec.providers) as providers:
            assert providers["sim"].base_url  # the run did fill it
            runs.append((providers["sim"].base_url, _run_keys(suite, providers, store)))
    (url_1, keys_1), (url_2, keys_2) = runs
    assert url_1 != url_2
    assert keys_1 == keys_2
    assert len(set(keys_1[0])) == 4  # one per sample

    # The same simulator named by the suite at the first run's address is another endpoint.
    given_suite = _simulated_suite(
        tmp_path, "sim-given", {"kind": "simulated", "base_url": url_1 + "/v1"}
    )
    with started_simulators(given_suite.spec.providers) as providers:
        assert providers["sim"].base_url == url_1 + "/v1"  # left as the suite gave it
        given_hashes, given_part = _run_keys(given_suite, providers, store)
    assert not set(given_hashes) & set(keys_1[0])
    assert given_part != keys_1[1]


def test_each_endpoint_has_its_own_cache_files(tmp_path):
    suite = _simulated_suite(tmp_path, "parts", {"kind": "simulated"})
    target = suite.spec.targets[0]
    keys = {
        ResponseCache.part_key(suite, target, endpoint_identity(ProviderConfig(**config)), 0)
        for config in (
            {"kind": "openai"},
            {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
            {"kind": "openai", "headers": {"x-tenant": "b"}},
            {"kind": "local", "base_url": "http://127.0.0.1:9/v1"},
        )
    }
    assert len(keys) == 4
    assert all(k.startswith("cache/") and k.endswith("-8-0.parquet") for k in keys)


def test_a_client_defined_copy_of_an_endpoint_shares_its_answers():
    if "from_client" not in ProviderConfig.model_fields:
        pytest.skip("ProviderConfig has no from_client field yet")
    config = {"kind": "openai", "base_url": "https://api.example.com/v1"}
    assert key({**config, "from_client": True}) == key(config)
