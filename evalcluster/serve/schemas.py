"""Request and response bodies of the HTTP API (they are also its OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evalcluster.errors import SpecError
from evalcluster.suite.rules import check_nesting

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
MAX_RESULTS_PAGE = 1000


def shallow_suite(suite: dict[str, Any] | None) -> dict[str, Any] | None:
    """A validator's check of an inline suite object: refused (ValueError) when nested too deep.

    The object is written out as YAML (recursively): a deep one would exhaust the stack there
    (RecursionError, a 503) instead of being refused as the client's mistake."""
    if suite is not None:
        try:
            check_nesting(suite)
        except SpecError as exc:
            raise ValueError(exc.message) from None
    return suite


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """Every error answer."""

    error: str = Field(description="A stable code: not_found, invalid_suite, unauthorized, ...")
    detail: str = Field(description="What went wrong, in words.")
    field: str | None = Field(None, description="Dotted path of the offending value, if any.")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


# -- suites ------------------------------------------------------------------------------------


class CreateSuiteRequest(_Strict):
    """A suite, as YAML text or as the same document in JSON. Exactly one of the two."""

    yaml: str | None = Field(None, description="The suite file's text.")
    suite: dict[str, Any] | None = Field(None, description="The suite as a JSON object.")

    @field_validator("suite")
    @classmethod
    def _not_too_deep(cls, suite: dict[str, Any] | None) -> dict[str, Any] | None:
        return shallow_suite(suite)

    @model_validator(mode="after")
    def _exactly_one(self) -> CreateSuiteRequest:
        if (self.yaml is None) == (self.suite is None):
            raise ValueError("give exactly one of 'yaml' (text) or 'suite' (object)")
        return self


class SuiteCreated(BaseModel):
    name: str
    version: str = Field(description="Content hash of the resolved suite and its dataset.")
    created: bool = Field(description="False when this exact version was already stored.")
    versions: list[str] = Field(description="Every stored version, oldest first.")


class SuiteSummary(BaseModel):
    name: str
    latest: str
    versions: list[str]
    tenant: str = Field(description="The tenant the suite belongs to.")


class SuiteList(BaseModel):
    suites: list[SuiteSummary]


class SuiteDetail(BaseModel):
    name: str
    version: str
    latest: str | None = Field(description="The newest version; null while the name is hidden.")
    hidden: bool
    versions: list[str]
    yaml: str = Field(description="The suite file as it was submitted.")


# -- runs --------------------------------------------------------------------------------------


class RunRequest(_Strict):
    """Start an evaluation run of a stored suite."""

    suite: str = Field(pattern=NAME_PATTERN, description="The suite's name.")
    version: str | None = Field(
        None, pattern=NAME_PATTERN, description="A stored version; the latest by default."
    )
    targets: list[str] = Field(
        default_factory=list, max_length=1000, description="Only these targets (default all)."
    )
    budget_usd: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Overrides the suite's budget."
    )
    max_samples: int | None = Field(
        None, ge=1, le=1_000_000_000, description="Evaluate only the first N samples."
    )
    no_cache: bool = Field(False, description="Do not reuse cached answers.")
    priority: float = Field(
        1.0,
        gt=0,
        le=1000,
        allow_inf_nan=False,
        description="Weight of this run's share of shared providers' rate.",
    )


class RunAccepted(BaseModel):
    run_id: str
    status: str
    suite: str
    version: str
    links: dict[str, str] = Field(description="Where to follow the run.")


class TargetStatus(BaseModel):
    done: int = 0
    total: int | None = None
    errors: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    metrics: dict[str, Any] | None = Field(
        None, description="The target's part of summary.json, once the run has ended."
    )


class BatchStatus(BaseModel):
    """A batching run's provider batches: what is waiting, what is at the provider, what came
    back (summed over the run's providers in batch mode)."""

    queued: int = Field(0, description="Requests waiting to be sent in a batch.")
    batches_in_progress: int = Field(0, description="Batches at the provider.")
    requests_in_progress: int = Field(0, description="Requests in those batches.")
    answered: int = Field(0, description="Answers routed back from ended batches.")
    retried: int = Field(0, description="Requests sent again (a batch lost or cut short).")
    anomalies: int = Field(0, description="Odd answers seen (duplicates, unknown ids).")


class RunStatusResponse(BaseModel):
    """GET /v1/runs/{id}, and the ``run`` of the event stream's ``state`` and ``end``."""

    run_id: str
    suite: str | None = None
    suite_version: str | None = None
    status: str = Field(
        description="pending, running, finished, failed, killed, budget_exhausted, or "
        "interrupted (its driver is gone: POST /v1/runs/{id}/resume finishes it)"
    )
    message: str | None = None
    live: bool = Field(description="Whether a driver is working on the run now.")
    cancel_requested: bool = False
    created_at: str | None = None
    updated_at: str | None = None
    done: int = 0
    total: int | None = Field(None, description="Null when no longer known (an ended run).")
    errors: int = 0
    cost_usd: float = 0.0
    budget: dict[str, Any] | None = None
    targets: dict[str, TargetStatus] = Field(default_factory=dict)
    comparison: dict[str, Any] | None = Field(
        None, description="A `compare:` run's verdict, interval, samples and path so far."
    )
    batches: BatchStatus | None = Field(
        None,
        description="A run whose providers answer by batch: its batches' progress, as last "
        "seen by its driver; null for a run that batches nothing, or once that is no longer "
        "known.",
    )


class RunListItem(BaseModel):
    run_id: str
    suite: str = ""
    suite_version: str = ""
    status: str
    targets: list[str] = Field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    tenant: str | None = Field(None, description="The owner; None for a command-line run.")


class RunList(BaseModel):
    runs: list[RunListItem]
    total: int
    offset: int
    limit: int


class ResultsPage(BaseModel):
    run_id: str
    target: str | None
    offset: int
    limit: int
    count: int = Field(description="Rows in this page.")
    next_offset: int | None = Field(description="Offset of the next page; null at the end.")
    rows: list[dict[str, Any]]


class CancelAccepted(BaseModel):
    run_id: str
    status: str = Field(description="The run's status when the cancel was sent.")
    cancel_requested: bool


# -- providers ---------------------------------------------------------------------------------


class ProviderStatus(BaseModel):
    provider: str
    actor: str = Field(description="The provider actor's name in the cluster.")
    kind: str | None = None
    breaker: str | None = Field(None, description="closed, open or half_open.")
    in_flight: int | None = None
    requests: int | None = None
    error_rate: float | None = None
    outcomes: dict[str, int] = Field(default_factory=dict)
    limiter: dict[str, Any] = Field(default_factory=dict, description="Limiter headroom.")
    restarted: bool | None = None


class ProviderList(BaseModel):
    providers: list[ProviderStatus]


class AuditLog(BaseModel):
    events: list[dict[str, Any]] = Field(
        description="Newest first: at, tenant, key_id, role, action and what it acted on."
    )
