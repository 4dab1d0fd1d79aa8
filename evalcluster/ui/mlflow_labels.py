"""Review labels copied to MLflow as human Feedback on the samples' traces (best effort).

The lake keeps the labels (`evalcluster.ui.labels`); MLflow gets a copy where a row has a trace:
only the first rows of each target are traced (``--max-traced-samples``), so most labels find
none and are skipped. A label is logged in a background thread, so an MLflow server that is
slow or down never holds up the review; failures are logged, not raised.
"""

from __future__ import annotations

import logging
import threading

from evalcluster.ui.labels import Label

log = logging.getLogger("evalcluster.serve")

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/ ")


def find_trace_id(tracking_uri: str, label: Label) -> str | None:
    """The trace of the labelled row, found by its tags; None when it was not traced."""
    from mlflow import MlflowClient
    from mlflow.tracing.client import TracingClient

    values = (label.run_id, label.target, label.sample_id, str(label.epoch))
    if not all(set(v) <= _SAFE for v in values):
        return None  # a quote or the like cannot go into MLflow's filter language safely
    experiments = MlflowClient(tracking_uri).search_experiments(
        filter_string="name LIKE 'evalcluster/%'"
    )
    if not experiments:
        return None
    traces = TracingClient(tracking_uri).search_traces(
        experiment_ids=[e.experiment_id for e in experiments],
        filter_string=(
            f"tags.`evalcluster.run_id` = '{label.run_id}' AND tags.target = '{label.target}' "
            f"AND tags.sample_id = '{label.sample_id}' AND tags.epoch = '{label.epoch}'"
        ),
        max_results=1,
        include_spans=False,
    )
    return traces[0].info.trace_id if traces else None


def log_label(tracking_uri: str, label: Label) -> bool:
    """Log `label` on its row's trace; False when the row has no trace."""
    from mlflow.entities import AssessmentSource, Feedback
    from mlflow.tracing.client import TracingClient

    trace_id = find_trace_id(tracking_uri, label)
    if trace_id is None:
        return False
    feedback = Feedback(
        name=f"human/{label.scorer}",
        value=label.verdict,
        rationale=label.comment or None,
        source=AssessmentSource(source_type="HUMAN", source_id=f"{label.tenant}/{label.key_id}"),
        trace_id=trace_id,
        metadata={"label_id": label.label_id, "created_at": label.created_at},
    )
    TracingClient(tracking_uri).log_assessment(trace_id, feedback)
    return True


def log_label_soon(tracking_uri: str, label: Label) -> None:
    """`log_label` in a daemon thread; a failure is logged with the label's id only."""

    def run() -> None:
        try:
            if not log_label(tracking_uri, label):
                log.info("label %s: its row has no MLflow trace; kept in the lake only",
                         label.label_id)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - best effort: the lake has the label
            log.warning("label %s not logged to MLflow: %s", label.label_id, type(exc).__name__)

    threading.Thread(target=run, name="evalcluster-label-mlflow", daemon=True).start()
