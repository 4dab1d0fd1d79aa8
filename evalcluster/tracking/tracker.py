"""MLflow logging of evaluation runs: one parent run per evaluation, one child run per target.

Everything goes through one explicit `MlflowClient` (never MLflow's fluent, process-global
active run), so several evaluations in one process or thread cannot interfere. Every MLflow
failure surfaces as `TrackingError`; the caller has already written the results lake.
See docs/mlflow.md for what is logged where.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlflow import MlflowClient
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from mlflow.entities import DatasetInput, InputTag, Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracing.client import TracingClient

from evalcluster.errors import TrackingError
from evalcluster.scoring.summary import group_columns, group_rows, paired_metrics
from evalcluster.tracking import fields as f
from evalcluster.tracking.comparison import comparison_metrics, comparison_tags
from evalcluster.tracking.connection import (
    DEFAULT_TRACKING_URI,
    connect,
    mlflow_errors,
    redact_uri,
)
from evalcluster.tracking.sample_traces import build_sample_trace, collect_rows, log_sample_traces

RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")
SUMMARY_ARTIFACT = "summary.json"
SUITE_ARTIFACT = "suite.yaml"
SAMPLES_TABLE_ARTIFACT = "samples.json"
DATASET_CONTEXT = "evaluation"
TRACE_WRITE_WORKERS = 4
# MLflow's batch limits (mlflow.utils.validation): 100 params and 1000 metrics per log_batch.
_PARAMS_PER_BATCH = 100
_METRICS_PER_BATCH = 1000
# group_by breakdowns on a target's child run: <scorer>/by_<column>/<value>/<stat>
MAX_LOGGED_GROUPS = 100  # per scorer and column: the largest groups; all are in summary.json
GROUP_STATS = ("mean", "ci_low", "ci_high", "n")
TAG_GROUPS_CAPPED = "evalcluster.groups_capped"
_MAX_METRIC_NAME = 250  # mlflow.utils.validation.MAX_ENTITY_KEY_LENGTH
_NOT_METRIC_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\- ]")


@dataclass
class TargetResult:
    """One target's outcome, with its metrics already computed by the job."""

    name: str
    provider: str
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    sample_count: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    """``<scorer>/mean``, ``<scorer>/stderr``, ``tokens/input``, ``tokens/output``,
    ``cost_usd``, ``cost_usd/saved_batch``, ``cost_usd/saved_cache`` (what the vendors' batch
    APIs and prompt caches saved), ``latency_ms/p50``, ``latency_ms/p95``, ``errors``."""


@dataclass(frozen=True)
class _Evaluation:
    """What a finished parent run needs to know about its evaluation, read from its tags."""

    experiment_id: str
    run_id: str
    suite: str
    suite_version: str
    results_uri: str
    seed: str
    start_time: int


class MlflowTracker:
    """Logs evaluation runs to the MLflow tracking store at `tracking_uri`.

    Raises `TrackingError` at once if the store is unusable (an HTTP server is probed with a
    3-second timeout; see `evalcluster.tracking.connection` for the HTTP retry settings).
    """

    def __init__(self, tracking_uri: str = DEFAULT_TRACKING_URI):
        self._uri = tracking_uri
        self._client: MlflowClient = connect(tracking_uri)
        with mlflow_errors("opening the trace store", tracking_uri):
            self._traces = TracingClient(tracking_uri)
        # A tracking server takes parallel writes; a local SQLite file would only lock.
        remote = urlsplit(tracking_uri).scheme.lower() in ("http", "https", "databricks")
        self._trace_workers = TRACE_WRITE_WORKERS if remote else 1

    @property
    def tracking_uri(self) -> str:
        return self._uri

    def __repr__(self) -> str:
        return f"MlflowTracker({redact_uri(self._uri)!r})"

    # -- parent run -------------------------------------------------------------------------

    def start_evaluation(
        self,
        *,
        suite: str,
        suite_version: str,
        run_id: str,
        results_uri: str,
        suite_file_text: str,
        seed: int,
        sample_count: int,
        resumed_from: list[str] | None = None,
    ) -> str:
        """Open the parent run (status RUNNING) of evaluation `run_id`; returns its MLflow id.

        Logs params, tags, the suite file and the results dataset right away, so a driver that
        dies leaves a run that says what it was doing.
        """
        with mlflow_errors("starting the evaluation run", self._uri):
            experiment_id = self._experiment_id(f.experiment_name(suite))
            tags = {
                f.TAG_RUN_ID: run_id,
                f.TAG_RESULTS_URI: f.tag_value(results_uri),
                f.TAG_SUITE: suite,
                f.TAG_SUITE_VERSION: suite_version,
                f.TAG_ROLE: f.ROLE_EVALUATION,
            }
            if resumed_from:
                tags[f.TAG_RESUMED_FROM] = f.tag_value(",".join(resumed_from))
            run = self._client.create_run(experiment_id, tags=tags, run_name=run_id)
        parent_id = run.info.run_id
        params = {
            "suite_version": suite_version,
            "seed": str(seed),
            "sample_count": str(sample_count),
        }
        try:
            with mlflow_errors("starting the evaluation run", self._uri):
                self._log_batch(parent_id, params=params)
                self._client.log_text(parent_id, suite_file_text, SUITE_ARTIFACT)
                self._log_dataset(parent_id, suite=suite, run_id=run_id, results_uri=results_uri)
        except TrackingError:
            # The caller never learns this run's id, so do not leave it RUNNING.
            with contextlib.suppress(Exception):
                self._client.set_terminated(parent_id, status="FAILED")
            raise
        return parent_id

    def finish_evaluation(
        self,
        parent_run_id: str,
        *,
        status: str,
        summary: dict,
        targets: list[TargetResult],
        samples: Iterable[Mapping] = (),
        max_traced_samples: int = 1000,
    ) -> None:
        """Log the outcome: one child run per target, summary, per-sample traces; close all.

        `status` is ``FINISHED``, ``FAILED`` or ``KILLED`` (anything else is a `ValueError`).
        A child run also gets its target's ``group_by`` breakdowns from `summary` (see
        `group_metrics`); the parent run does not copy them.
        Up to `max_traced_samples` rows of `samples` per target become traces. The runs are
        closed even when part of the logging failed; the first failure is then raised as
        `TrackingError`.
        """
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}, not {status!r}")
        first_error: TrackingError | None = None
        child_ids: dict[str, str] = {}
        with mlflow_errors("reading the evaluation run", self._uri):
            evaluation = self._evaluation(parent_run_id)
        try:
            with mlflow_errors("logging the evaluation results", self._uri):
                summary_text = json.dumps(summary, indent=2, default=str)
                self._client.log_text(parent_run_id, summary_text, SUMMARY_ARTIFACT)
                target_summaries = _mapping(_mapping(summary).get("targets"))
                for target in targets:
                    child_ids[target.name] = self._log_target(
                        evaluation,
                        parent_run_id,
                        target,
                        _mapping(target_summaries.get(target.name)),
                    )
                per_target = [(t.name, f.finite_metrics(t.metrics)) for t in targets]
                self._log_batch(parent_run_id, metrics=f.parent_metrics(per_target))
                self._log_batch(parent_run_id, metrics=paired_metrics(_mapping(summary)))
                self._log_batch(parent_run_id, metrics=comparison_metrics(_mapping(summary)))
                for tag, value in comparison_tags(_mapping(summary)).items():
                    self._client.set_tag(parent_run_id, tag, f.tag_value(value))
                targets_tag = f.tag_value(",".join(child_ids))
                self._client.set_tag(parent_run_id, f.TAG_TARGETS, targets_tag)
            with mlflow_errors("logging per-sample traces", self._uri):
                self._log_samples(evaluation, child_ids, samples, max_traced_samples)
        except TrackingError as exc:
            first_error = exc
        try:
            with mlflow_errors("closing the evaluation runs", self._uri):
                for child_id in child_ids.values():
                    self._client.set_terminated(child_id, status=status)
                self._client.set_terminated(parent_run_id, status=status)
        except TrackingError as exc:
            first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def mark_killed(self, mlflow_run_id: str) -> None:
        """Close as KILLED a parent run, and its children, that a killed driver left RUNNING.

        Runs already closed keep their status, so calling this twice is harmless.
        """
        with mlflow_errors("marking the run killed", self._uri):
            run = self._client.get_run(mlflow_run_id)
            children = self._client.search_runs(
                [run.info.experiment_id],
                filter_string=(
                    f"tags.`{f.TAG_PARENT_RUN_ID}` = '{mlflow_run_id}' "
                    "and attributes.status = 'RUNNING'"
                ),
            )
            for child in children:
                self._client.set_terminated(child.info.run_id, status="KILLED")
            if run.info.status == "RUNNING":
                self._client.set_terminated(mlflow_run_id, status="KILLED")

    def find_running(self, run_id: str) -> list[str]:
        """MLflow ids of the parent runs of evaluation `run_id` that are still RUNNING."""
        with mlflow_errors("searching running evaluations", self._uri):
            experiment_ids = [
                e.experiment_id
                for e in self._all_experiments(f"name LIKE '{f.EXPERIMENT_PREFIX}%'")
            ]
            found: list[str] = []
            for start in range(0, len(experiment_ids), 100):
                found += self._search_running(experiment_ids[start : start + 100], run_id)
            return found

    # -- helpers ----------------------------------------------------------------------------

    def _experiment_id(self, name: str) -> str:
        experiment = self._client.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                self._client.restore_experiment(experiment.experiment_id)
            return experiment.experiment_id
        try:
            return self._client.create_experiment(
                name, artifact_location=local_artifact_location(self._uri)
            )
        except MlflowException:
            # Another driver created it between our read and our create.
            experiment = self._client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def _all_experiments(self, filter_string: str) -> list:
        experiments, token = [], None
        while True:
            page = self._client.search_experiments(
                filter_string=filter_string, max_results=1000, page_token=token
            )
            experiments += list(page)
            token = page.token
            if not token:
                return experiments

    def _search_running(self, experiment_ids: list[str], run_id: str) -> list[str]:
        filters = [f"tags.`{f.TAG_ROLE}` = '{f.ROLE_EVALUATION}'", "attributes.status = 'RUNNING'"]
        if "'" not in run_id:  # the filter grammar has no escapes; such ids match client-side
            filters.append(f"tags.`{f.TAG_RUN_ID}` = '{run_id}'")
        found, token = [], None
        while True:
            page = self._client.search_runs(
                experiment_ids,
                filter_string=" and ".join(filters),
                max_results=1000,
                page_token=token,
            )
            found += [r.info.run_id for r in page if r.data.tags.get(f.TAG_RUN_ID) == run_id]
            token = page.token
            if not token:
                return found

    def _evaluation(self, parent_run_id: str) -> _Evaluation:
        run = self._client.get_run(parent_run_id)
        tags = run.data.tags
        if tags.get(f.TAG_ROLE) != f.ROLE_EVALUATION:
            raise TrackingError(f"MLflow run {parent_run_id} is not an evalcluster evaluation run")
        return _Evaluation(
            experiment_id=run.info.experiment_id,
            run_id=tags[f.TAG_RUN_ID],
            suite=tags[f.TAG_SUITE],
            suite_version=tags[f.TAG_SUITE_VERSION],
            results_uri=tags[f.TAG_RESULTS_URI],
            seed=run.data.params.get("seed", ""),
            start_time=run.info.start_time,
        )

    def _log_target(
        self,
        evaluation: _Evaluation,
        parent_id: str,
        target: TargetResult,
        target_summary: Mapping[str, Any],
    ) -> str:
        tags = {
            f.TAG_PARENT_RUN_ID: parent_id,
            f.TAG_ROLE: f.ROLE_TARGET,
            f.TAG_RUN_ID: evaluation.run_id,
            f.TAG_RESULTS_URI: evaluation.results_uri,
            f.TAG_SUITE: evaluation.suite,
            f.TAG_SUITE_VERSION: evaluation.suite_version,
            f.TAG_TARGET: target.name,
        }
        child = self._client.create_run(
            evaluation.experiment_id,
            start_time=evaluation.start_time,
            tags=tags,
            run_name=target.name,
        )
        child_id = child.info.run_id
        params = {
            "suite_version": evaluation.suite_version,
            "model": target.model,
            "provider": target.provider,
            "sample_count": str(target.sample_count),
            "seed": evaluation.seed,
            **f.flatten_params(target.params, prefix=f.GENERATION_PARAM_PREFIX),
        }
        groups, capped = group_metrics(target_summary, max_groups=MAX_LOGGED_GROUPS)
        metrics = {**f.finite_metrics(groups), **f.finite_metrics(target.metrics)}
        self._log_batch(child_id, params=params, metrics=metrics)
        if capped:
            self._client.set_tag(child_id, TAG_GROUPS_CAPPED, f.tag_value(capped))
        self._log_dataset(
            child_id,
            suite=evaluation.suite,
            run_id=evaluation.run_id,
            results_uri=evaluation.results_uri,
        )
        return child_id

    def _log_samples(
        self,
        evaluation: _Evaluation,
        child_ids: Mapping[str, str],
        samples: Iterable[Mapping],
        cap: int,
    ) -> None:
        rows_by_target = collect_rows(samples, list(child_ids), cap)
        for target, rows in rows_by_target.items():
            if not rows:
                continue
            child_id = child_ids[target]
            traces = [
                build_sample_trace(
                    row,
                    experiment_id=evaluation.experiment_id,
                    source_run_id=child_id,
                    eval_run_id=evaluation.run_id,
                )
                for row in rows
            ]
            log_sample_traces(
                self._traces, evaluation.experiment_id, traces, workers=self._trace_workers
            )
            table = [
                {**row, "trace_id": trace.info.trace_id}
                for row, trace in zip(rows, traces, strict=True)
            ]
            self._log_table(child_id, table)

    def _log_table(self, run_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        columns: dict[str, list] = {}
        for row in rows:
            for key in row:
                columns.setdefault(key, [])
        for row in rows:
            for key, values in columns.items():
                value = row.get(key)
                plain = isinstance(value, str | int | float | bool | None)
                values.append(value if plain else str(value))
        self._client.log_table(run_id, data=columns, artifact_file=SAMPLES_TABLE_ARTIFACT)

    def _log_dataset(
        self, mlflow_run_id: str, *, suite: str, run_id: str, results_uri: str
    ) -> None:
        digest = hashlib.sha256(f"{run_id}\n{results_uri}".encode()).hexdigest()[:16]
        with warnings.catch_warnings():
            # A local path matches two registered local sources; both are the same class.
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(results_uri)
        dataset = MetaDataset(
            source=source,
            name=f"{suite}/{run_id}",
            digest=digest,
        )
        context = InputTag(key="mlflow.data.context", value=DATASET_CONTEXT)
        self._client.log_inputs(
            mlflow_run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=[context])]
        )

    def _log_batch(
        self,
        run_id: str,
        *,
        params: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        now_ms = int(time.time() * 1000)
        param_list = [Param(k, v) for k, v in (params or {}).items()]
        metric_list = [Metric(k, v, now_ms, 0) for k, v in (metrics or {}).items()]
        for start in range(0, len(param_list), _PARAMS_PER_BATCH):
            self._client.log_batch(run_id, params=param_list[start : start + _PARAMS_PER_BATCH])
        for start in range(0, len(metric_list), _METRICS_PER_BATCH):
            self._client.log_batch(run_id, metrics=metric_list[start : start + _METRICS_PER_BATCH])


def group_metrics(
    target_summary: Mapping[str, Any], *, max_groups: int = MAX_LOGGED_GROUPS
) -> tuple[dict[str, float], str]:
    """A target's ``group_by`` breakdowns (``summary.json``'s ``groups``) as child-run metrics.

    Each group of each scorer gives ``<scorer>/by_<column>/<value>/<stat>`` for ``mean``,
    ``ci_low``, ``ci_high`` and ``n`` (e.g. ``exact/by_topic/algebra/mean``): MLflow refuses
    ``=`` in metric names, and a name under ``<scorer>/mean/`` would turn the metric
    ``<scorer>/mean`` into a folder for a file-based store. Characters MLflow refuses (anything
    but letters, digits, ``_ - . /`` and space; ``/`` too, inside a column or value) become
    ``_``; a value that was changed, clashes or is cut to fit the 250-character limit gets a
    short hash of the original.

    Only the `max_groups` largest groups per scorer and column are logged. Returns the metrics
    and, when groups were left out, a sentence saying how many, else ``""``.
    """
    metrics: dict[str, float] = {}
    capped: list[str] = []
    for column in group_columns({"targets": {"t": target_summary}}):
        rows, left_out = group_rows(target_summary, column, limit=max_groups)
        if left_out:
            capped.append(
                f"{column}: the {len(rows)} largest of {len(rows) + left_out} groups logged"
            )
        for scorer in _mapping(target_summary.get("scorers")):
            prefix = f"{scorer}/by_{_metric_part(column)}/"
            used: set[str] = set()
            for row in rows:
                stats = row.scorers.get(scorer)
                if stats is None:
                    continue
                room = _MAX_METRIC_NAME - len(prefix) - 1 - max(map(len, GROUP_STATS))
                value = _metric_part(row.value, room=room, taken=used)
                used.add(value)
                for stat in GROUP_STATS:
                    if isinstance(stats.get(stat), int | float):
                        metrics[f"{prefix}{value}/{stat}"] = stats[stat]
    note = "; ".join(capped)
    return metrics, (f"{note} (the others are in summary.json)" if note else "")


def _metric_part(text: str, *, room: int = 100, taken: Iterable[str] = ()) -> str:
    """`text` as one segment of an MLflow metric name (see `group_metrics`)."""
    part = _NOT_METRIC_NAME_CHARS.sub("_", text)
    if not part.strip("."):  # "", "." and ".." are not names of their own
        part = "_" * max(len(part), 1)
    if part != text or part in taken or len(part) > room:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        part = f"{part[: max(room - 9, 1)]}_{digest}"
    return part


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def local_artifact_location(tracking_uri: str) -> str | None:
    """For a SQLite store, artifacts beside the database (`<db folder>/mlruns`), not in
    whatever folder the driver happened to start in (MLflow's default, `./mlruns`)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None  # servers and other stores choose their own artifact root
    database = Path(tracking_uri.removeprefix("sqlite:///")).expanduser()
    if database.name in ("", ":memory:"):
        return None
    return (database.resolve().parent / "mlruns").as_uri()
