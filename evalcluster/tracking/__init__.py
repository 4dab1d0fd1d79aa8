"""MLflow logging of evaluation runs (DESIGN.md, "MLflow"; docs/mlflow.md)."""

from evalcluster.tracking.connection import DEFAULT_TRACKING_URI
from evalcluster.tracking.tracker import MlflowTracker, TargetResult

__all__ = ["DEFAULT_TRACKING_URI", "MlflowTracker", "TargetResult"]
