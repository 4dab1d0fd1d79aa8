"""Options of one evaluation run, validated where they enter (command line or HTTP)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from evalcluster.errors import StoreError
from evalcluster.store.layout import DEFAULT_STORE, check_run_id

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_MAX_ERROR_RATE = 0.5


class RunOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str | None = Field(None, description="Resume this run, or name a new one.")
    targets: list[str] = Field(default_factory=list, description="Only these targets.")
    store: str = DEFAULT_STORE
    endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO and friends).")
    tracking_uri: str | None = DEFAULT_TRACKING_URI
    address: str | None = Field(None, description="Ray cluster address; None = embedded.")
    executor: Literal["auto", "ray", "local"] = Field(
        "auto",
        description="Where shards and provider endpoints run: 'ray', or 'local' (this "
        "process, no Ray); 'auto' is 'ray' with an address or a Ray already up, else 'local'.",
    )
    max_samples: int | None = Field(None, ge=1)
    budget_usd: float | None = Field(None, gt=0, description="Overrides the suite's budget.")
    no_cache: bool = False
    dry_run: bool = False
    priority: float = Field(1.0, gt=0, description="Share of a shared provider's rate.")
    max_inflight_shards: int | None = Field(None, ge=1)
    max_traced_samples: int = Field(1000, ge=0)
    max_error_rate: float = Field(
        DEFAULT_MAX_ERROR_RATE,
        ge=0,
        le=1,
        description="The command exits 1 when more than this fraction of the run's rows are "
        "errors (1 never). The run's own status does not depend on it.",
    )

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_run_id(value)
        except StoreError as exc:
            raise ValueError(str(exc)) from None
