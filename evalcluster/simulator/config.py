"""The simulator's behaviour: one validated pydantic model, changeable live."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evalcluster.simulator.difficulty import Difficulty

ForceKind = Literal[
    "429",
    "quota",
    "credits",
    "500",
    "503",
    "overloaded",
    "auth",
    "forbidden",
    "bad_request",
    "context_length",
    "content_filter",
    "length",
    "blocked",
    "error_in_200",
    "invalid_json",
    "html_502",
    "empty",
    "timeout",
    "drop",
]
FORCE_KINDS: tuple[str, ...] = get_args(ForceKind)


class FaultRates(NamedTuple):
    """Effective probabilities of each injected fault (own rate plus a quarter of error_rate)."""

    error_500: float
    error_503: float
    timeout: float
    drop: float


class SimulatorConfig(BaseModel):
    """Everything the simulator does differently from a perfect, instant, unlimited provider."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: float = Field(0.0, ge=0, description="Fixed delay before every answer.")
    jitter_ms: float = Field(
        0.0, ge=0, description="Extra delay drawn uniformly from [0, jitter_ms] per request."
    )
    rpm: int | None = Field(None, ge=1, description="Requests per minute; None = unlimited.")
    tpm: int | None = Field(
        None,
        ge=1,
        description="Tokens per minute; a request is charged input tokens + max_tokens "
        "requested, or + its actual output tokens when it gives no max. None = unlimited.",
    )
    rate_window_s: float = Field(
        1.0,
        gt=0,
        description="Limits are enforced per window of this length (at least 60/limit s so a "
        "window admits one request): a window admits limit * window / 60, so a client cannot "
        "burst a whole minute's budget at once.",
    )
    rate_limiter: Literal["window", "token_bucket"] = Field(
        "window",
        description="How rpm and tpm are enforced: 'window' counts fixed windows of "
        "rate_window_s; 'token_bucket' is a bucket holding rate_window_s of the limit, refilled "
        "continuously (simulator/ratelimit.py).",
    )
    error_rate: float = Field(
        0.0, ge=0, le=1, description="Shorthand: adds error_rate / 4 to each of the four faults."
    )
    error_500_rate: float = Field(0.0, ge=0, le=1, description="Probability of a 500.")
    error_503_rate: float = Field(0.0, ge=0, le=1, description="Probability of a 503.")
    timeout_rate: float = Field(
        0.0, ge=0, le=1, description="Probability of holding the request for hang_s seconds."
    )
    drop_rate: float = Field(
        0.0, ge=0, le=1, description="Probability of closing the connection with no response."
    )
    hang_s: float = Field(30.0, ge=0, description="How long a timed-out request is held.")
    accuracy: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Probability of a right answer: to a request carrying its sample's reference "
        "(x-evalcluster-reference, sent by runs to simulated providers) on any dataset; without "
        "one, to arithmetic and multiple-choice prompts only.",
    )
    seed: int = Field(0, description="Seeds answer correctness and fault injection.")
    correlation: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Latent (tetrachoric) correlation of two models' correctness on one item: "
        "the share of a model's latent that is the item's difficulty, shared by every model "
        "of the same seed (difficulty.py; phi_correlation gives the 0/1 correlation it "
        "implies). 0 keeps each model's draws independent, as before.",
    )
    cluster_pattern: str | None = Field(
        None,
        description="A regular expression whose first group (or whole match) in the prompt "
        "names the item's cluster; items of one cluster share part of their difficulty.",
    )
    cluster_correlation: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of an item's difficulty that is its cluster's (needs correlation > 0 "
        "and cluster_pattern).",
    )
    api_keys: list[str] | None = Field(
        None,
        repr=False,
        description="Accepted API keys; None accepts any key, or none at all (a keyless "
        "`kind: local` client sends no Authorization header). Never logged or echoed.",
    )
    price_input_per_mtok: float = Field(1.0, ge=0, description="USD per million input tokens.")
    price_output_per_mtok: float = Field(2.0, ge=0, description="USD per million output tokens.")
    force: ForceKind | None = Field(
        None, description="Force this outcome on every request, as the x-sim-force header does."
    )
    forced_retry_after_s: float = Field(
        1.0, ge=0, description="Delay sent with a forced 429 unless x-sim-retry-after is given."
    )
    context_window: int | None = Field(
        None, ge=1, description="Input tokens above this get the format's context-length error."
    )
    models: list[str] = Field(
        default_factory=lambda: ["sim-1", "sim-1-mini"],
        description="Listed by GET /v1/models; requests may name any model.",
    )
    # --- batch APIs and prompt caching (simulator/batch.py, simulator/prompt_cache.py) ------
    batch_turnaround_s: float = Field(
        1.0,
        ge=0,
        description="Seconds a batch takes from creation to its last result; request i of n "
        "finishes at turnaround * (i + 1) / n, so a cancel or expiry cuts it part-way.",
    )
    batch_expire_after_s: float = Field(
        86_400.0,
        gt=0,
        description="A batch not finished this many seconds after creation ends `expired`, "
        "its unfinished requests listed as expired (the vendors' 24h window).",
    )
    batch_line_error_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of batched requests answered with a per-line server error, drawn "
        "deterministically from a hash of (seed, custom_id).",
    )
    batch_corrupt: list[
        Literal["malformed_line", "unknown_id", "duplicate_line", "missing_line"]
    ] = Field(
        default_factory=list,
        description="Damage to put in every batch's results, to test clients: a malformed "
        "JSON line, a line for an unknown custom_id, a repeated line, a missing line.",
    )
    batch_discount: float = Field(
        0.5, ge=0, le=1, description="Price factor of batched tokens in GET /stats' batch cost."
    )
    cache_ttl_s: float = Field(
        300.0, ge=0, description="How long a prompt prefix stays cached after its last use."
    )
    cache_min_tokens: int = Field(
        1024, ge=1, description="Shortest prefix that is cached (OpenAI and Anthropic: 1,024)."
    )

    @field_validator("cluster_pattern")
    @classmethod
    def _check_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _check_fault_total(self) -> SimulatorConfig:
        total = sum(self.fault_rates())
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"fault rates add up to {total:.3f} > 1 "
                "(error_500_rate + error_503_rate + timeout_rate + drop_rate + error_rate)"
            )
        return self

    def fault_rates(self) -> FaultRates:
        """The probability of each injected fault, error_rate split evenly over the four."""
        share = self.error_rate / 4
        return FaultRates(
            self.error_500_rate + share,
            self.error_503_rate + share,
            self.timeout_rate + share,
            self.drop_rate + share,
        )

    def difficulty(self) -> Difficulty:
        """The shared-difficulty settings, as `model.reply` takes them."""
        return Difficulty(self.correlation, self.cluster_correlation, self.cluster_pattern)

    def updated(self, changes: Mapping[str, Any]) -> SimulatorConfig:
        """A new validated config with `changes` applied. Raises pydantic.ValidationError."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def public_dump(self) -> dict[str, Any]:
        """The config as JSON-ready data with the API keys replaced by their count."""
        data = self.model_dump(mode="json")
        if self.api_keys is not None:
            data["api_keys"] = f"<{len(self.api_keys)} keys>"
        return data
