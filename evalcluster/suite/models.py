"""Pydantic models of the suite file (README.md, "The suite file"; docs/architecture.md).

Every model forbids unknown keys so a typo is reported with its path instead of being ignored.
Secrets are never values here: a provider names the environment variable or file that holds
its key, and the key is read only where the request is made.
"""

from __future__ import annotations

import difflib
import functools
import importlib.metadata
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Provider kinds a suite may name. The names live here, not in `providers.registry`, because
# spec depends on nothing else of ours (providers imports spec, not the other way round):
# the built-in kinds are listed here and `providers.registry.register_provider` adds each kind
# it registers with `register_provider_kind`, so a kind registered there validates in a suite
# (and `unregister_provider` takes it away again). `simulated` has no adapter class: the run
# starts a simulator and talks to it in the wire format its options name.
ProviderKind = str
BUILTIN_PROVIDER_KINDS = frozenset(
    {"openai", "anthropic", "gemini", "openrouter", "local", "custom", "simulated"}
)
_PROVIDER_KINDS: set[str] = set(BUILTIN_PROVIDER_KINDS)


# Installed packages add provider kinds by declaring entry points in this group, e.g. in their
# pyproject.toml: [project.entry-points."evalcluster.providers"] mykind = "pkg.mod:MyAdapter".
PROVIDER_ENTRY_POINT_GROUP = "evalcluster.providers"


@functools.cache
def installed_provider_kinds() -> dict[str, str]:
    """Kinds declared by installed packages: name -> "module:attr" of the adapter class.

    Read once per process from the packages' metadata; nothing is imported. A name that is a
    built-in kind is ignored: a plugin may add kinds, never replace one."""
    found = importlib.metadata.entry_points(group=PROVIDER_ENTRY_POINT_GROUP)
    return {ep.name: ep.value for ep in found if ep.name not in BUILTIN_PROVIDER_KINDS}


def register_provider_kind(kind: str) -> None:
    """Let suites name `kind` (called by `providers.registry.register_provider`)."""
    _PROVIDER_KINDS.add(kind)


def unregister_provider_kind(kind: str) -> None:
    """Forget a registered kind; the built-in ones stay."""
    if kind not in BUILTIN_PROVIDER_KINDS:
        _PROVIDER_KINDS.discard(kind)


def provider_kinds() -> list[str]:
    """Every kind a suite may name, sorted: built-in, registered and installed."""
    return sorted(_PROVIDER_KINDS | installed_provider_kinds().keys())


def _check_kind(kind: str) -> str:
    if kind in _PROVIDER_KINDS or kind in installed_provider_kinds():
        return kind
    close = difflib.get_close_matches(kind, provider_kinds(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown provider kind {kind!r}{hint} (known: {', '.join(provider_kinds())})")


WireFormat = Literal["openai", "anthropic", "gemini"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"invalid {what} {value!r}: use letters, digits, '.', '_' or '-' (at most 128)"
        )
    return value


class BreakerConfig(StrictModel):
    """Circuit breaker thresholds for one provider endpoint."""

    failure_threshold: int = Field(
        5, ge=1, description="Consecutive provider-side failures that open it."
    )
    reset_timeout_s: float = Field(30.0, gt=0, description="Seconds open before half-open probes.")
    half_open_probes: int = Field(1, ge=1, description="Requests let through while half-open.")
    down_probe_s: float = Field(
        1.0,
        gt=0,
        description="When connection failures (refused, host not found) opened it: seconds "
        "before the first probe (at most reset_timeout_s). A probe that cannot connect either "
        "marks the endpoint down: requests without a fallback then end as endpoint_down at once.",
    )
    max_wait_s: float | None = Field(
        None,
        gt=0,
        description="Longest a request without a fallback waits for a probe while the breaker "
        "is open before it ends as circuit_open; default 4 x reset_timeout_s.",
    )


class RetryConfig(StrictModel):
    """Retries of transient failures, with exponential backoff and full jitter."""

    max_attempts: int = Field(6, ge=1, description="Attempts per request, the first included.")
    max_total_s: float = Field(300.0, gt=0, description="Give up once this long has passed.")
    base_delay_s: float = Field(0.5, ge=0, description="First backoff ceiling; doubles each time.")
    max_delay_s: float = Field(30.0, ge=0, description="Largest backoff ceiling.")
    max_retry_after_s: float = Field(
        120.0, ge=0, description="A provider delay longer than this fails the attempt instead."
    )


class Pricing(StrictModel):
    """US dollars per million tokens."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cache_read_per_mtok: float | None = Field(None, ge=0)
    cache_write_per_mtok: float | None = Field(None, ge=0)
    batch_discount: float | None = Field(
        None,
        gt=0,
        le=1,
        # Left out of dumps when unset, so suites written before it keep their versions.
        exclude_if=lambda value: value is None,
        description="Price factor of tokens sent through the vendor's batch API (cache rates "
        "included); None: the table's, 0.5 for OpenAI, Anthropic and Gemini.",
    )


class CustomHttpConfig(StrictModel):
    """A custom HTTP API: the request template and where the answer is in the response."""

    url: str
    method: Literal["POST", "PUT", "GET"] = "POST"
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Header values may use {api_key}; it is substituted at request time only.",
    )
    body_template: Any = Field(
        default_factory=dict,
        description="JSON body; strings '{prompt}', '{system}', '{model}', '{messages}', "
        "'{max_tokens}' and '{temperature}' are replaced by the request's values.",
    )
    text_path: str = Field(description="Dotted path to the answer text, e.g. 'choices.0.text'.")
    input_tokens_path: str | None = None
    output_tokens_path: str | None = None
    finish_reason_path: str | None = None


class SimulatorOptions(StrictModel):
    """Behaviour of the local simulator started for a provider of kind `simulated`."""

    format: WireFormat = "openai"
    latency_ms: float = Field(0.0, ge=0)
    jitter_ms: float = Field(0.0, ge=0)
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    error_rate: float = Field(0.0, ge=0, le=1)
    accuracy: float = Field(1.0, ge=0, le=1)
    seed: int = 0
    correlation: float = Field(0.0, ge=0, lt=1, description="Latent correlation (difficulty.py).")
    cluster_pattern: str | None = Field(None, description="Regex naming an item's cluster.")
    cluster_correlation: float = Field(0.0, ge=0, le=1, description="Cluster's share.")

    @field_validator("cluster_pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return v


ProviderMode = Literal["sync", "batch", "auto"]
# `mode: auto` batches an endpoint that a run sends at least this many requests: below it the
# half price saves cents while the answers wait minutes to hours instead of seconds.
AUTO_BATCH_MIN_REQUESTS = 1000
# Kinds with a vendor batch API (`providers/batch`); `simulated` speaks all three formats'.
BATCH_KINDS = frozenset({"openai", "anthropic", "gemini", "simulated"})


class BatchModeConfig(StrictModel):
    """How a provider in batch mode gathers and watches its batches (`actors/batch_lane.py`)."""

    max_batch_requests: int = Field(
        1000, ge=1, le=50_000, description="A batch is sent once it holds this many requests."
    )
    max_wait_s: float = Field(
        5.0, ge=0, le=3600, description="...or once its oldest request has waited this long."
    )
    poll_initial_s: float = Field(1.0, gt=0, le=3600, description="First delay between polls.")
    poll_max_s: float = Field(60.0, gt=0, le=3600, description="Longest delay between polls.")


class ProviderConfig(StrictModel):
    """One provider endpoint. One Ray actor per endpoint owns its limits for the cluster."""

    kind: ProviderKind = Field(
        description="openai, anthropic, gemini, openrouter, local, custom, simulated, or a kind "
        "added with providers.register_provider."
    )
    base_url: str | None = Field(
        None, description="What the provider's official SDK means by base_url; default per kind."
    )
    api_key_env: str | None = Field(None, description="Environment variable holding the key.")
    api_key_file: str | None = Field(None, description="File whose content is the key.")
    rpm: int | None = Field(None, ge=1, description="Requests per minute for the whole cluster.")
    tpm: int | None = Field(None, ge=1, description="Tokens per minute for the whole cluster.")
    burst_s: float = Field(1.0, gt=0, description="Seconds' worth of rate that may go at once.")
    max_concurrency: int = Field(64, ge=1, le=10_000)
    timeout_s: float = Field(60.0, gt=0)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    fallback: list[str] = Field(default_factory=list)
    pricing: Pricing | None = None
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    anthropic_version: str = "2023-06-01"
    http_referer: str | None = Field(None, description="OpenRouter: optional HTTP-Referer.")
    app_title: str | None = Field(None, description="OpenRouter: optional X-Title.")
    provider_routing: dict[str, Any] | None = Field(
        None, description="OpenRouter: the request's `provider` preferences object."
    )
    custom: CustomHttpConfig | None = None
    allow_private_network: bool = Field(
        False, description="Allow link-local and cloud metadata addresses (custom, local)."
    )
    from_client: bool = Field(
        False,
        description="Set by the HTTP service on every provider a submitted suite defines "
        "itself: such a provider never gets a server-held key and reaches only public "
        "addresses, checked again each time a connection is made. A suite's own value is "
        "overwritten.",
    )
    client_networks: list[str] = Field(
        default_factory=list,
        description="Set by the HTTP service beside from_client: the operator's extra networks "
        "(CIDR) such a provider may reach. A suite's own value is overwritten.",
    )
    simulator: SimulatorOptions = Field(default_factory=SimulatorOptions)
    mode: ProviderMode = Field(
        "sync",
        description="sync: one HTTP call per request. batch: the vendor's batch API (half "
        "price, answers within the vendor's window, durable across a driver restart). auto: "
        f"batch when the run sends this endpoint at least {AUTO_BATCH_MIN_REQUESTS} requests.",
        # Left out of dumps at the default, so suites written before it keep their versions.
        exclude_if=lambda value: value == "sync",
    )
    batch: BatchModeConfig = Field(
        default_factory=BatchModeConfig,
        description="Batch mode's gathering and polling.",
        exclude_if=lambda value: value == BatchModeConfig(),
    )
    prompt_cache: Literal["auto", "off"] = Field(
        "auto",
        description="auto: mark a system prompt long enough for the vendor's prompt cache "
        "(Anthropic cache_control, from about 1,024 tokens); off: never mark it.",
        exclude_if=lambda value: value == "auto",
    )

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        return _check_kind(v)

    def batches(self, requests: int) -> bool:
        """Whether this endpoint answers a run that sends it `requests` requests by batch."""
        if self.mode == "auto":
            return requests >= AUTO_BATCH_MIN_REQUESTS
        return self.mode == "batch"

    @model_validator(mode="after")
    def _check_kind_fields(self) -> ProviderConfig:
        if self.api_key_env and self.api_key_file:
            raise ValueError("set api_key_env or api_key_file, not both")
        if self.kind == "custom" and self.custom is None:
            raise ValueError("kind 'custom' needs a 'custom' block (url, body_template, text_path)")
        if self.kind in ("local",) and not self.base_url:
            raise ValueError(f"kind {self.kind!r} needs base_url")
        if self.mode != "sync" and self.kind not in BATCH_KINDS:
            raise ValueError(
                f"mode {self.mode!r} needs a kind with a batch API "
                f"({', '.join(sorted(BATCH_KINDS))}); kind {self.kind!r} has none: use mode 'sync'"
            )
        return self


class GenerationParams(BaseModel):
    """Generation parameters; unknown keys pass through to the provider's request body."""

    model_config = ConfigDict(extra="allow", frozen=True)

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: list[str] | None = None
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class TargetSpec(StrictModel):
    """A model to evaluate: a provider endpoint and a model name there."""

    name: str
    provider: str
    model: str
    params: GenerationParams = Field(default_factory=GenerationParams)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "target name")


class DatasetSource(StrictModel):
    """Where the samples are and which columns mean what."""

    path: str
    format: Literal["jsonl", "csv", "parquet"] | None = Field(
        None, description="Taken from the file extension when not given."
    )
    id: str | None = Field(None, description="Column with a unique sample id; row number if unset.")
    input: str = Field("input", description="Column with the model's input.")
    target: str | None = Field("target", description="Column with the reference answer.")
    metadata: list[str] = Field(default_factory=list, description="Columns kept with each result.")


class ScorerSpec(BaseModel):
    """A scorer: `type` selects it, the other keys are its options."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    name: str | None = Field(None, description="Column suffix; defaults to the type.")

    @property
    def column_name(self) -> str:
        return self.name or self.type

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class CompareSpec(StrictModel):
    """A sequential comparison of two targets (scoring/sequential.py, README "compare:")."""

    a: str = Field(description="The baseline target.")
    b: str = Field(description="The target compared with it: differences are b - a.")
    margin: float = Field(0.0, ge=0, le=1, description="Differences within +-margin are equal.")
    alpha: float = Field(0.05, gt=0, lt=1, description="Error rate of the confidence sequence.")
    max_samples: int = Field(20_000, ge=1, description="Samples at most (both targets).")
    scorer: str | None = Field(None, description="Scorer compared; default the first.")


class SuiteSpec(StrictModel):
    """A whole evaluation suite as written in YAML."""

    name: str
    description: str | None = None
    dataset: DatasetSource
    prompt: str
    system: str | None = None
    scorers: list[ScorerSpec] = Field(min_length=1)
    epochs: int = Field(1, ge=1, le=1000)
    seed: int = 0
    shard_size: int = Field(256, ge=1, le=1_000_000)
    budget_usd: float | None = Field(None, gt=0)
    group_by: list[str] = Field(default_factory=list)
    cluster: str | None = Field(
        None, description="Dataset column whose equal values form clusters (clustered errors)."
    )
    targets: list[TargetSpec] = Field(min_length=1)
    judges: list[TargetSpec] = Field(
        default_factory=list, description="Targets only used by model_graded scorers."
    )
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    providers_file: str | None = Field(None, description="A providers.yaml shared by suites.")
    compare: CompareSpec | None = Field(None, description="Stop once a vs b is decided.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v, "suite name")

    @model_validator(mode="after")
    def _check_references(self) -> SuiteSpec:
        names = [t.name for t in (*self.targets, *self.judges)]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"duplicate target names: {', '.join(duplicated)}")
        columns = [s.column_name for s in self.scorers]
        duplicated = sorted({n for n in columns if columns.count(n) > 1})
        if duplicated:
            raise ValueError(f"duplicate scorer names: {', '.join(duplicated)} (set 'name')")
        return self
