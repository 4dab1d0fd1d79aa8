"""MLflow logging of evaluation runs (docs/mlflow.md; docs/architecture.md)."""

from evalcluster.tracking.connection import DEFAULT_TRACKING_URI
from evalcluster.tracking.tracker import MlflowTracker, TargetResult

__all__ = ["DEFAULT_TRACKING_URI", "MlflowTracker", "TargetResult"]
