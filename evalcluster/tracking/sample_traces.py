"""Per-sample results as MLflow traces, so the MLflow UI can browse an evaluation's samples.

MLflow 3's GenAI views (a run's "Traces" tab, an evaluation table with a column per assessment;
the experiment's trace list) show traces whose metadata ``mlflow.sourceRun`` names the run: this is
what ``mlflow.genai.evaluate`` writes for a static dataset (``genai/evaluation/harness.py``
creates one root-span trace per row and logs one Feedback per scorer plus the Expectations).
We write the same shape for rows already scored, one trace per lake row:

- root span ``sample`` (type LLM): inputs ``{"prompt": ...}``, outputs the model's output,
  token usage, duration = the row's latency; state ERROR when the provider call failed;
- assessments: Expectation ``expected_response`` (the reference) and one Feedback per
  ``score_<name>`` column (source CODE, id ``evalcluster.scorer.<name>``); a failed sample has,
  instead of a value, the error kind and message on each Feedback;
- tags ``sample_id``, ``target``, ``epoch``, ``error_kind``, ``evalcluster.run_id``.

Traces are written through the store API of one `TracingClient` bound to the tracker's URI, not
through MLflow's global tracer (whose exporter follows the process-wide tracking URI): the trace
infos carrying their assessments first, then the spans in batches (``log_spans``; OTLP
``/v1/traces`` on a server). On a SQL store (the SQLite default) the infos go in bulk, a few
hundred per transaction, with the rows ``start_trace`` would write (`start_traces_sql`); a
tracking server gets one ``StartTraceV3`` per trace, on a few threads.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from mlflow.entities import (
    AssessmentError,
    AssessmentSource,
    Expectation,
    Feedback,
    TraceData,
    TraceInfo,
    TraceLocation,
    TraceState,
)
from mlflow.entities.span import Span
from mlflow.tracing.client import TracingClient
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, Status, StatusCode

from evalcluster.rows import SCORE_PREFIX

EXPECTATION_NAME = "expected_response"  # the name mlflow.genai's built-in scorers read
SCORER_SOURCE_PREFIX = "evalcluster.scorer."
SPAN_NAME = "sample"
PREVIEW_CHARS = 1000
SPAN_BATCH = 200
TRACE_BATCH = 500  # trace infos per transaction of the bulk write

# Trace-level keys MLflow reads (mlflow/tracing/constant.py).
_META_SOURCE_RUN = "mlflow.sourceRun"
_META_SCHEMA_VERSION = "mlflow.trace_schema.version"
_META_TOKEN_USAGE = "mlflow.trace.tokenUsage"
_META_COST = "mlflow.trace.cost"
_TAG_TRACE_NAME = "mlflow.traceName"
# Span attributes (mlflow.tracing.constant.SpanAttributeKey); values are JSON strings.
_ATTR_REQUEST_ID = "mlflow.traceRequestId"
_ATTR_SPAN_TYPE = "mlflow.spanType"
_ATTR_INPUTS = "mlflow.spanInputs"
_ATTR_OUTPUTS = "mlflow.spanOutputs"
_ATTR_TOKEN_USAGE = "mlflow.chat.tokenUsage"
_ATTR_MODEL = "mlflow.llm.model"

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleTrace:
    """One row's trace, ready to write: its info (with assessments) and its one span."""

    info: TraceInfo
    span: Span


def score_values(row: Mapping[str, Any]) -> dict[str, float | None]:
    """The row's ``score_<name>`` columns by scorer name; a non-number reads as no score."""
    return {
        key[len(SCORE_PREFIX) :]: _float_or_none(value)
        for key, value in row.items()
        if key.startswith(SCORE_PREFIX)
    }


def _float_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else _dump(value)
    return text[:PREVIEW_CHARS]


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _assessments(row: Mapping[str, Any], trace_id: str, span_id: str) -> list:
    assessments: list = []
    reference = row.get("reference")
    if reference is not None:
        expectation = Expectation(
            name=EXPECTATION_NAME,
            value=reference,
            source=AssessmentSource(source_type="CODE", source_id="evalcluster.dataset"),
            trace_id=trace_id,
            span_id=span_id,
        )
        assessments.append(expectation)
    error_kind = row.get("error_kind")
    for name, value in score_values(row).items():
        source = AssessmentSource(source_type="CODE", source_id=f"{SCORER_SOURCE_PREFIX}{name}")
        if value is None and error_kind:
            error = AssessmentError(
                error_code=str(error_kind), error_message=str(row.get("error") or "")
            )
            feedback = Feedback(name=name, error=error, source=source, trace_id=trace_id)
        elif value is None:
            continue
        else:
            feedback = Feedback(name=name, value=value, source=source, trace_id=trace_id)
        feedback.span_id = span_id
        assessments.append(feedback)
    now_ms = int(time.time() * 1000)
    for assessment in assessments:
        # Assessments sent inside a trace are stored as given, so they need ids and times.
        assessment.assessment_id = f"a-{uuid.uuid4().hex}"
        assessment.create_time_ms = assessment.last_update_time_ms = now_ms
    return assessments


def build_sample_trace(
    row: Mapping[str, Any], *, experiment_id: str, source_run_id: str, eval_run_id: str
) -> SampleTrace:
    """The trace of one lake row, linked to the MLflow run `source_run_id`."""
    otel_trace_id = int(uuid.uuid4().hex, 16)
    otel_span_id = secrets.randbits(64) or 1
    trace_id = f"tr-{otel_trace_id:032x}"
    span_id = f"{otel_span_id:016x}"
    latency_ms = max(0.0, float(row.get("latency_ms") or 0.0))
    end_ns = time.time_ns()
    start_ns = end_ns - int(latency_ms * 1_000_000)
    inputs = {"prompt": row.get("prompt")}
    outputs = row.get("output")
    error_kind = row.get("error_kind")
    usage = {
        "input_tokens": _int(row.get("input_tokens")),
        "output_tokens": _int(row.get("output_tokens")),
    }
    usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]

    attributes = {
        _ATTR_REQUEST_ID: _dump(trace_id),
        _ATTR_SPAN_TYPE: _dump("LLM"),
        _ATTR_INPUTS: _dump(inputs),
        _ATTR_OUTPUTS: _dump(outputs),
        _ATTR_TOKEN_USAGE: _dump(usage),
    }
    if row.get("model"):
        attributes[_ATTR_MODEL] = _dump(str(row["model"]))
    status = (
        Status(StatusCode.ERROR, f"{error_kind}: {row.get('error') or ''}"[:PREVIEW_CHARS])
        if error_kind
        else Status(StatusCode.OK)
    )
    otel_span = ReadableSpan(
        name=SPAN_NAME,
        context=SpanContext(trace_id=otel_trace_id, span_id=otel_span_id, is_remote=False),
        parent=None,
        start_time=start_ns,
        end_time=end_ns,
        attributes=attributes,
        status=status,
        resource=Resource.get_empty(),
    )

    metadata = {
        _META_SOURCE_RUN: source_run_id,
        _META_SCHEMA_VERSION: "3",
        _META_TOKEN_USAGE: _dump(usage),
    }
    if row.get("cost_usd") is not None:
        metadata[_META_COST] = _dump({"total_cost": float(row["cost_usd"])})
    target = str(row.get("target", ""))
    tags = {
        _TAG_TRACE_NAME: f"{target}/{row.get('sample_id')}",
        "sample_id": str(row.get("sample_id")),
        "target": target,
        "epoch": str(row.get("epoch", 0)),
        "evalcluster.run_id": eval_run_id,
    }
    if error_kind:
        tags["error_kind"] = str(error_kind)
    info = TraceInfo(
        trace_id=trace_id,
        trace_location=TraceLocation.from_experiment_id(experiment_id),
        request_time=start_ns // 1_000_000,
        execution_duration=int(latency_ms),
        state=TraceState.ERROR if error_kind else TraceState.OK,
        request_preview=_preview(inputs),
        response_preview=_preview(outputs) if outputs is not None else None,
        trace_metadata=metadata,
        tags=tags,
        assessments=_assessments(row, trace_id, span_id),
    )
    return SampleTrace(info=info, span=Span(otel_span))


def log_sample_traces(
    client: TracingClient,
    experiment_id: str,
    traces: Sequence[SampleTrace],
    workers: int = 1,
    *,
    bulk: bool = True,
) -> list[str]:
    """Write `traces` to the store; returns their ids. Errors propagate.

    Trace infos (with their assessments) go first, then the spans in batches of `SPAN_BATCH`
    (one ``log_spans`` call each). Infos first: a SQL store that already holds a trace's spans
    takes its info through a slower merge path (``SqlAlchemyStore._start_trace_once``).

    On a SQL store (SQLite, the default) the infos are written `TRACE_BATCH` at a time, each batch
    in one transaction (`start_traces_sql`), rather than with one ``start_trace`` call (and one
    commit) per trace; the rows are the same. Other stores (a tracking server), a batch the bulk
    write refuses, and ``bulk=False`` take one ``start_trace`` call per trace, on `workers`
    threads.
    """
    infos: list[TraceInfo] = []
    for first in range(0, len(traces), TRACE_BATCH):
        batch = [t.info for t in traces[first : first + TRACE_BATCH]]
        written = start_traces_sql(client.store, experiment_id, batch) if bulk else None
        infos += written if written is not None else _start_one_by_one(client, batch, workers)
    for first in range(0, len(traces), SPAN_BATCH):
        batch = traces[first : first + SPAN_BATCH]
        try:
            client.log_spans(experiment_id, [t.span for t in batch])
        except NotImplementedError:
            # File stores and servers older than 3.4 keep spans as a trace artifact instead.
            for info, trace in zip(infos, traces, strict=True):
                client._upload_trace_data(info, TraceData(spans=[trace.span]))
            break
    return [t.info.trace_id for t in traces]


def _start_one_by_one(
    client: TracingClient, infos: Sequence[TraceInfo], workers: int
) -> list[TraceInfo]:
    if workers <= 1:
        return [client.start_trace(info) for info in infos]
    with ThreadPoolExecutor(workers, thread_name_prefix="evalcluster-traces") as pool:
        return list(pool.map(client.start_trace, infos))


def start_traces_sql(
    store: Any, experiment_id: str, infos: Sequence[TraceInfo]
) -> list[TraceInfo] | None:
    """Write new trace infos, with their tags, metadata and assessments, in one transaction.

    The rows are those ``SqlAlchemyStore.start_trace`` writes for a new trace (its insert path,
    mirrored here for MLflow 3.x); only the transactions differ: one for all of `infos` instead
    of one (plus an experiment read) per trace, which on SQLite is most of the cost.
    Returns `infos`, or None (nothing written) when `store` is not a SQL store, this MLflow lacks
    what the mirror needs, or the write failed (an id already taken, a deleted experiment, ...):
    the caller then writes them one by one, which raises any lasting error.
    """
    sql_store_module = sys.modules.get("mlflow.store.tracking.sqlalchemy_store")
    if not infos or sql_store_module is None:
        return None  # a SQL store has imported its module
    if type(store) is not sql_store_module.SqlAlchemyStore:
        return None  # a subclass (a server's workspace store, say) may write traces its own way
    try:
        import sqlalchemy
        from mlflow.store.tracking.dbmodels.models import (
            SqlAssessments,
            SqlTraceInfo,
            SqlTraceMetadata,
            SqlTraceTag,
        )
        from mlflow.store.tracking.utils.sql_trace_rollups import (
            RollupFamily,
            enqueue_rollup_rebuild_partitions,
        )
        from mlflow.store.tracking.utils.trace_analytics import (
            PROMOTED_TRACE_METADATA_KEYS,
            analytics_columns_from_metadata,
            validate_trace_name,
        )
        from mlflow.tracing.constant import TraceMetadataKey, TraceTagKey
    except ImportError:
        return None
    try:
        experiment = store.get_experiment(experiment_id)
        store._check_experiment_is_active(experiment)
        trace_rows, tag_rows, metadata_rows, assessment_rows = [], [], [], []
        for info in infos:
            if info.experiment_id != experiment_id:
                return None
            trace_id = info.trace_id
            metadata = dict(info.trace_metadata)
            trace_rows.append(
                {
                    "request_id": trace_id,
                    "experiment_id": experiment_id,
                    "timestamp_ms": info.request_time,
                    "execution_time_ms": info.execution_duration,
                    "status": info.state.value,
                    "client_request_id": info.client_request_id,
                    "request_preview": info.request_preview,
                    "response_preview": info.response_preview,
                    "trace_name": validate_trace_name(info.tags.get(TraceTagKey.TRACE_NAME)),
                    **analytics_columns_from_metadata(metadata),
                }
            )
            tags = {k: v for k, v in info.tags.items() if k != TraceTagKey.TRACE_NAME}
            location = store._get_trace_artifact_location_tag(experiment, trace_id)
            tags[location.key] = location.value
            tag_rows += [{"request_id": trace_id, "key": k, "value": v} for k, v in tags.items()]
            for key in PROMOTED_TRACE_METADATA_KEYS:
                metadata.pop(key, None)
            metadata[TraceMetadataKey.TRACE_INFO_FINALIZED] = "true"
            metadata_rows += [
                {"request_id": trace_id, "key": k, "value": v} for k, v in sorted(metadata.items())
            ]
            for assessment in info.assessments:
                row = _column_values(SqlAssessments.from_mlflow_entity(assessment))
                row["trace_id"] = trace_id
                row["experiment_id"] = int(experiment_id)
                row["trace_timestamp_ms"] = info.request_time
                assessment_rows.append(row)
        families = (RollupFamily.TRACE_METRIC, RollupFamily.ASSESSMENT)
        times = [info.request_time for info in infos]
        with store.ManagedSessionMaker(read_only=False) as session:
            partitions = [(family, int(experiment_id), times) for family in families]
            enqueue_rollup_rebuild_partitions(session, partitions)
            for model, rows in (
                (SqlTraceInfo, trace_rows),
                (SqlTraceTag, tag_rows),
                (SqlTraceMetadata, metadata_rows),
                (SqlAssessments, assessment_rows),
            ):
                if rows:
                    session.execute(sqlalchemy.insert(model), rows)
    except Exception:
        _logger.debug("bulk trace write refused; writing one by one", exc_info=True)
        return None
    return list(infos)


def _column_values(row: Any) -> dict[str, Any]:
    """The column values set on an ORM object (not its relationships), by attribute name."""
    import sqlalchemy  # loaded by the SQL store already

    state = sqlalchemy.inspect(row)
    return {
        attr.key: state.dict[attr.key]
        for attr in state.mapper.column_attrs
        if attr.key in state.dict
    }


def collect_rows(
    samples: Iterable[Mapping[str, Any]], targets: Sequence[str], cap: int
) -> dict[str, list[Mapping[str, Any]]]:
    """Up to `cap` rows for each of `targets`, in order; stops reading once all are full."""
    rows: dict[str, list[Mapping[str, Any]]] = {t: [] for t in targets}
    if cap <= 0 or not targets:
        return rows
    full = 0
    for row in samples:
        bucket = rows.get(str(row.get("target")))
        if bucket is None or len(bucket) >= cap:
            continue
        bucket.append(row)
        if len(bucket) == cap:
            full += 1
            if full == len(rows):
                break
    return rows
