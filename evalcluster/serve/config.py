"""The service configuration file (``evalcluster serve --config serve.yaml``), validated at start.

```yaml
tenants:
  team-a: {api_keys_env: TEAM_A_KEYS, role: runner,
           quotas: {max_active_runs: 4, max_budget_usd_per_run: 20, max_websockets: 16}}
  ops:    {api_keys_file: /etc/evalcluster/ops.keys, role: admin}
providers_file: providers.yaml     # the operator's registry: the only providers with server secrets
datasets: {roots: [/srv/evals/data, "s3://bucket/datasets/"]}
client_providers: deny             # deny | no_secrets
```

The same keys are accepted as Serve application arguments (``serve run
evalcluster.serve.app:build_app config=serve.yaml store_uri=...``); an argument given beside a
``config`` file overrides the file's value. Every error names the field at fault.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from evalcluster.errors import SpecError
from evalcluster.gateway.config import GatewayConfig
from evalcluster.jobs.options import DEFAULT_STORE, DEFAULT_TRACKING_URI
from evalcluster.store.layout import check_name
from evalcluster.suite.loader import parse_yaml, validation_to_spec_error
from evalcluster.suite.rules import ClientProviders

Role = Literal["viewer", "runner", "admin"]
ROLE_RANK = {"viewer": 0, "runner": 1, "admin": 2}
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quotas(_Strict):
    """What one tenant may use. None means no limit."""

    max_active_runs: int | None = Field(4, ge=1, description="Runs going at once.")
    max_samples_per_run: int | None = Field(
        None, ge=1, description="A run's max_samples; a run without one gets this."
    )
    max_budget_usd_per_run: float | None = Field(
        None, gt=0, description="A run's budget; a run without one gets this."
    )
    max_budget_usd_per_day: float | None = Field(
        None,
        gt=0,
        description="Money the tenant's runs may commit per UTC day: ended runs count their "
        "cost, runs still going their whole budget.",
    )
    max_priority: float = Field(1.0, gt=0, description="Highest share of a provider's rate.")
    max_websockets: int = Field(16, ge=1, description="Event streams open at once (per replica).")
    max_datasets: int = Field(100, ge=0, description="Uploaded datasets kept at once.")
    gateway_budget_usd_per_day: float | None = Field(
        None, ge=0, description="Money the tenant may spend through the gateway per UTC day."
    )
    gateway_weight: float = Field(
        1.0, gt=0, description="The tenant's share of a provider's rate in the gateway."
    )
    gateway_routes: tuple[str, ...] | None = Field(
        None, description="Gateway routes the tenant may use; None: every route."
    )


class TenantConfig(_Strict):
    """A tenant: where its keys are, what it may do, how much."""

    api_keys_env: str | None = Field(None, description="Variable with comma-separated keys.")
    api_keys_file: str | None = Field(None, description="File with one key a line.")
    role: Role = Field("runner", description="viewer reads; runner also runs; admin sees all.")
    quotas: Quotas = Field(default_factory=Quotas)


class DatasetsConfig(_Strict):
    """Where a submitted suite's dataset may come from, besides the tenant's uploads."""

    roots: list[str] = Field(
        default_factory=list,
        description="Server folders or s3:// prefixes a suite may name files under.",
    )
    max_upload_bytes: int = Field(DEFAULT_MAX_UPLOAD_BYTES, ge=1)


class ServiceConfig(_Strict):
    """Everything `evalcluster serve` and `build_app` accept (see the module docstring)."""

    tenants: dict[str, TenantConfig] = Field(default_factory=dict)
    providers_file: str | None = Field(None, description="The operator's provider registry.")
    datasets: DatasetsConfig = Field(default_factory=DatasetsConfig)
    client_providers: ClientProviders = "deny"
    client_networks: list[str] = Field(
        default_factory=list,
        description="Extra networks (CIDR) that providers defined by suites may reach, besides "
        "public addresses: e.g. an internal model farm.",
    )
    store_uri: str = DEFAULT_STORE
    endpoint_url: str | None = None
    tracking_uri: str | None = DEFAULT_TRACKING_URI
    api_keys_file: str | None = Field(
        None, description="Legacy: one key a line, each key its own runner tenant."
    )
    default_quotas: Quotas = Field(
        default_factory=Quotas, description="Quotas of the tenants made from bare keys."
    )
    allow_no_auth: bool = False
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1)
    max_websockets: int = Field(
        256, ge=1, description="Event streams open at once per replica, all tenants together."
    )
    base_dir: str | None = Field(
        None, description="Legacy: a dataset root (same as datasets.roots: [base_dir])."
    )
    driver_linger_s: float = Field(
        0.0, ge=0, description="Seconds a run's driver stays after its run ends."
    )
    gateway: GatewayConfig = Field(
        default_factory=GatewayConfig, description="The OpenAI-compatible gateway's routes."
    )

    @field_validator("tenants")
    @classmethod
    def _tenant_names(cls, tenants: dict[str, TenantConfig]) -> dict[str, TenantConfig]:
        for name, tenant in tenants.items():
            try:
                check_name("tenant name", name)
            except Exception as exc:  # noqa: BLE001 - StoreError: report as a field error
                raise ValueError(str(exc)) from None
            if not tenant.api_keys_env and not tenant.api_keys_file:
                raise ValueError(f"tenant {name!r} needs api_keys_env or api_keys_file")
        return tenants


def load_service_config(args: dict[str, Any]) -> ServiceConfig:
    """The configuration from Serve arguments: a ``config`` file, then the other arguments.

    Arguments from ``serve run`` arrive as strings; pydantic converts them ("true", "2048").
    """
    args = {k: v for k, v in args.items() if v is not None}
    data: dict[str, Any] = {}
    location = "service arguments"
    config_path = args.pop("config", None)
    if config_path:
        path = Path(str(config_path)).expanduser()
        location = str(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise SpecError(f"cannot read {path}: {exc.strerror or exc}", field="config") from None
        data = parse_yaml(text, location, allow_aliases=False)
        base = path.parent.resolve()
        data = _relative_to(data, base)
    data.update(args)
    try:
        return ServiceConfig.model_validate(data)
    except ValidationError as exc:
        raise validation_to_spec_error(exc, location) from exc


def _relative_to(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative file names in a config file mean: next to that file."""

    def fix(value: Any) -> Any:
        if (
            isinstance(value, str)
            and value
            and "://" not in value
            and not Path(value).is_absolute()
        ):
            return str(base / value)
        return value

    out = dict(data)
    for key in ("providers_file", "api_keys_file", "store_uri", "base_dir"):
        if key in out:
            out[key] = fix(out[key])
    tenants = out.get("tenants")
    if isinstance(tenants, dict):
        out["tenants"] = {
            name: {**t, "api_keys_file": fix(t.get("api_keys_file"))}
            if isinstance(t, dict) and t.get("api_keys_file")
            else t
            for name, t in tenants.items()
        }
    datasets = out.get("datasets")
    if isinstance(datasets, dict) and isinstance(datasets.get("roots"), list):
        out["datasets"] = {**datasets, "roots": [fix(r) for r in datasets["roots"]]}
    return out
