"""Suite specification: pydantic models, YAML loading, datasets and versioning."""

from evalcluster.suite.loader import LoadedSuite, load_suite, load_suite_text, suite_version
from evalcluster.suite.models import (
    BreakerConfig,
    GenerationParams,
    Pricing,
    ProviderConfig,
    RetryConfig,
    ScorerSpec,
    SuiteSpec,
    TargetSpec,
)

__all__ = [
    "BreakerConfig",
    "GenerationParams",
    "LoadedSuite",
    "Pricing",
    "ProviderConfig",
    "RetryConfig",
    "ScorerSpec",
    "SuiteSpec",
    "TargetSpec",
    "load_suite",
    "load_suite_text",
    "suite_version",
]
