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
through MLflow's global tracer (whose exporter follows the process-wide tracking URI):
one ``StartTraceV3`` per trace carrying its assessments, then the spans in batches (OTLP
``/v1/traces``).
"""

from __future__ import annotations

import json
import math
import secrets
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

SCORE_PREFIX = "score_"
EXPECTATION_NAME = "expected_response"  # the name mlflow.genai's built-in scorers read
SCORER_SOURCE_PREFIX = "evalcluster.scorer."
SPAN_NAME = "sample"
PREVIEW_CHARS = 1000
SPAN_BATCH = 200

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
    client: TracingClient, experiment_id: str, traces: Sequence[SampleTrace], workers: int = 1
) -> list[str]:
    """Write `traces` to the store with `workers` threads; returns their ids. Errors propagate.

    Each trace's info and assessments go in one call per trace (in parallel), then the spans in
    batches. Infos first: a SQL store that already holds a trace's spans takes its info through
    a slower merge path (``SqlAlchemyStore._start_trace_once``), which halves throughput.
    """

    def start(trace: SampleTrace) -> TraceInfo:
        return client.start_trace(trace.info)

    if workers <= 1:
        infos = [start(trace) for trace in traces]
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="evalcluster-traces") as pool:
            infos = list(pool.map(start, traces))
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
