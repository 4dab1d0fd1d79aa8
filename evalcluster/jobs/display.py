"""What a person sees: a live progress bar while a run goes, a summary table when it ends."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from evalcluster.actors.run import BatchProgress, RunSnapshot
from evalcluster.jobs.options import RunOptions
from evalcluster.scoring.summary import group_columns, group_rows
from evalcluster.suite.loader import LoadedSuite

console = Console(stderr=True)
stdout = Console(width=140)  # sys.stdout as it is at each write

MAX_GROUPS_SHOWN = 20
"""Groups of one column shown per target in the summary; the others are in ``_summary.json``."""


def format_usd(value: float | None) -> str:
    """A dollar amount (without the ``$``) with its first two significant digits visible.

    Four decimals from a cent up (``12.3456``, ``0.0123``); below a cent, as many as the first
    two significant digits need (``0.0042``, ``0.000042``), so a small cost never shows as
    zero; exactly zero is ``0``.
    """
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    size = abs(value)
    if size >= 0.01:
        return f"{value:,.4f}"
    decimals = 1 - math.floor(math.log10(size))
    if decimals > 12:
        return f"{value:.1e}"
    return f"{value:.{decimals}f}"


def format_score(stats: Mapping[str, Any] | None) -> str:
    """``mean [ci_low, ci_high]``, or just the mean without an interval, or ``-``."""
    stats = stats or {}
    mean, low, high = stats.get("mean"), stats.get("ci_low"), stats.get("ci_high")
    if mean is None:
        return "-"
    if low is None or high is None:
        return f"{mean:.3f}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


# Library loggers whose lines would break through the live bar, and the level they are held
# at while it is drawn: Ray's token-authentication banner (a WARNING that, with Ray's logging
# not configured, Python prints bare on stderr) and MLflow's "Creating initial MLflow database
# tables" / "Updating database tables" (INFO, on MLflow's own stderr handler). Their errors
# still show.
QUIET_LOGGERS = {
    "ray._private.authentication": logging.ERROR,
    "mlflow.store": logging.WARNING,
    "mlflow.tracking": logging.WARNING,
    "mlflow.tracing": logging.WARNING,
}


@contextlib.contextmanager
def quiet_library_logs() -> Iterator[None]:
    """Hold the QUIET_LOGGERS at their levels, then give them back the levels they had."""
    previous = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in previous.items():
            logger = logging.getLogger(name)
            if logger.level == QUIET_LOGGERS[name]:  # unless someone has set it since
                logger.setLevel(level)


class _Count(MofNCompleteColumn):
    """``done/total``; nothing until the total is known (the phase says what is going on)."""

    def render(self, task: Any) -> Text:
        if task.total is None:
            return Text("")
        return super().render(task)


class ProgressDisplay:
    """What the run is doing (its phase), then samples done/total, cost, errors and rate,
    redrawn from run-actor snapshots. While the bar is drawn, the library log lines in
    QUIET_LOGGERS are held back so that they do not break through it."""

    def __init__(self, enabled: bool = True, *, to: Console | None = None):
        self.enabled = enabled
        self.console = to or console
        self._progress: Progress | None = None
        self._task = None
        self._last_done = 0
        self._quiet: contextlib.ExitStack | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.enabled:
            self._quiet = contextlib.ExitStack()
            self._quiet.enter_context(quiet_library_logs())
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                _Count(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
                refresh_per_second=5,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("starting", total=None, stats="")
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self._progress is not None:
                self._progress.__exit__(*exc)
        finally:
            if self._quiet is not None:
                self._quiet.close()

    def phase(self, name: str, detail: str | None = None) -> None:
        """Show what the run is doing now (``starting Ray``, ``running``, ``writing MLflow``)
        in the bar, drawn at once: a phase may be over before the next timed refresh. A
        `detail` is printed as a line of its own (above the bar while it is drawn), with or
        without a bar: a person who pressed Ctrl-C must see that it was heard."""
        if detail:
            self.console.print(f"{name}: {detail}", markup=False, highlight=False)
        if self._progress is None or self._task is None:
            return
        self._progress.update(self._task, description=name)
        self._progress.refresh()

    def update(self, snapshot: RunSnapshot | Mapping[str, Any]) -> None:
        """Draw the run's progress: a live-run snapshot (or its `to_dict` form)."""
        if self._progress is None or self._task is None:
            return
        view = snapshot.to_dict() if isinstance(snapshot, RunSnapshot) else snapshot
        elapsed = self._progress.tasks[0].elapsed or 0.0
        rate = view["done"] / elapsed if elapsed > 0 else 0.0
        stats = f"${format_usd(view['cost_usd'])}  errors {view['errors']}  {rate:,.0f}/s"
        if line := batch_line(view.get("batches")):
            stats += f"\n{line}"
        self._progress.update(self._task, completed=view["done"], total=view["total"], stats=stats)


def batch_line(batches: BatchProgress | Mapping[str, int] | None) -> str:
    """The line under the bar while a run's batches are live: requests queued for a batch,
    batches at the provider (and their requests), answers routed back; empty otherwise."""
    if isinstance(batches, BatchProgress):
        batches = batches.to_dict()
    if not batches or not (batches.get("queued") or batches.get("batches_in_progress")):
        return ""
    return (
        f"batches: {batches.get('queued', 0):,} queued, "
        f"{batches.get('batches_in_progress', 0):,} at the provider "
        f"({batches.get('requests_in_progress', 0):,} requests), "
        f"{batches.get('answered', 0):,} answered"
    )


def print_plan(suite: LoadedSuite, options: RunOptions) -> None:
    from evalcluster.jobs.samples import count_samples

    samples = count_samples(suite, max_samples=options.max_samples)
    spec = suite.spec
    shards = -(-samples // spec.shard_size)
    table = Table(title=f"plan: {spec.name} (version {suite.version})")
    for column in ("target", "provider", "model", "samples", "epochs", "requests", "shards"):
        table.add_column(column)
    for t in spec.targets:
        table.add_row(
            t.name,
            t.provider,
            t.model,
            str(samples),
            str(spec.epochs),
            str(samples * spec.epochs),
            str(shards),
        )
    stdout.print(table)
    stdout.print(
        f"store: {options.store}   tracking: {options.tracking_uri}   "
        f"budget: {options.budget_usd or spec.budget_usd}"
    )


def result_tables(
    summary: Mapping[str, Any],
    scorers: Sequence[str],
    *,
    title: str = "",
    group_by: Sequence[str] = (),
    max_groups: int = MAX_GROUPS_SHOWN,
) -> list[RenderableType]:
    """The end-of-run summary: one row per target (samples, each scorer's mean and interval,
    errors, cached rows, tokens, cost, median latency, and what batching and prompt caching
    saved when either did), then a table per ``group_by`` column
    (each target's groups: value, n and each scorer's mean and interval; the `max_groups`
    largest per target, a last row counting the others)."""
    targets = summary.get("targets") or {}
    table = Table(title=title or None)
    table.add_column("target")
    table.add_column("samples", justify="right")
    for name in scorers:
        table.add_column(name, justify="right")
    for column in ("errors", "cached", "tokens in/out", "cost $", "p50 ms"):
        table.add_column(column, justify="right")
    savings = [
        (key, label)
        for key, label in (
            ("usd_saved_batch", "saved batch $"),
            ("usd_saved_cache", "saved cache $"),
        )
        if any(t.get(key) for t in targets.values())
    ]  # only when batching or prompt caching saved something
    for _, label in savings:
        table.add_column(label, justify="right")
    for name, t in targets.items():
        cells = [name, str(t.get("samples", 0))]
        cells += [format_score((t.get("scorers") or {}).get(scorer)) for scorer in scorers]
        cells += [
            str(t.get("errors", 0)),
            f"{t.get('cache_hits', 0):,}/{t.get('rows', 0):,}",
            f"{t.get('input_tokens', 0):,}/{t.get('output_tokens', 0):,}",
            format_usd(t.get("cost_usd", 0.0)),
            "-" if t.get("latency_ms_p50") is None else f"{t['latency_ms_p50']:.0f}",
        ]
        cells += [format_usd(t.get(key) or 0.0) for key, _ in savings]
        table.add_row(*cells)
    tables: list[RenderableType] = [table]
    found = group_columns(summary)
    for column in [*(c for c in group_by if c in found), *(c for c in found if c not in group_by)]:
        tables.append(_group_table(targets, column, scorers, max_groups))
    if isinstance(summary.get("comparison"), Mapping):
        tables.append(comparison_table(summary["comparison"]))
    return tables


def comparison_table(comparison: Mapping[str, Any]) -> Table:
    """A `compare:` run's outcome: the verdict, the difference and its interval, the samples
    it took and the money it did not spend."""
    a, b = comparison.get("a"), comparison.get("b")
    title = Text(f"compare {b} - {a} ({comparison.get('scorer')})")
    table = Table(title=title, title_justify="left")
    for column in ("verdict", "difference", "interval", "samples used", "not run", "$ not spent"):
        table.add_column(column, justify="left" if column == "verdict" else "right")
    lower, upper, diff = (
        comparison.get("lower"),
        comparison.get("upper"),
        comparison.get("difference"),
    )
    interval = "-" if lower is None or upper is None else f"[{lower:+.4f}, {upper:+.4f}]"
    table.add_row(
        Text(str(comparison.get("verdict"))),
        "-" if diff is None else f"{diff:+.4f}",
        interval,
        f"{comparison.get('samples_used', 0):,}/{comparison.get('samples_cap', 0):,}",
        f"{comparison.get('samples_not_run', 0):,}",
        format_usd(comparison.get("usd_not_spent")),
    )
    return table


def _group_table(
    targets: Mapping[str, Any], column: str, scorers: Sequence[str], max_groups: int
) -> Table:
    table = Table(title=f"by {column}", title_justify="left")
    table.add_column("target")
    table.add_column(column)
    table.add_column("n", justify="right")
    for name in scorers:
        table.add_column(name, justify="right")
    for name, t in targets.items():
        rows, left_out = group_rows(t, column, limit=max_groups)
        for row in rows:
            cells = [format_score(row.scorers.get(scorer)) for scorer in scorers]
            # Text, not markup: a metadata value such as "[b]" must show as written
            table.add_row(Text(name), Text(row.value), str(row.n), *cells)
        if left_out:
            more = f"... and {left_out} smaller in _summary.json"
            table.add_row(Text(name), more, "", *([""] * len(scorers)))
    return table


def print_result(result: Any, suite: LoadedSuite) -> None:
    scorers = [s.name or s.type for s in suite.spec.scorers]
    title = f"run {result.run_id}: {result.status}  ({result.wall_s:.1f}s)"
    group_by = list(suite.spec.group_by)
    for table in result_tables(result.summary or {}, scorers, title=title, group_by=group_by):
        stdout.print(table)
    stdout.print(f"results: {result.store_uri.rstrip('/')}/runs/run_id={result.run_id}")
    if result.mlflow_run_id:
        stdout.print(f"mlflow run: {result.mlflow_run_id}")
    if getattr(result, "mlflow_pid", None):
        stdout.print(
            f"mlflow: logging in the background (process {result.mlflow_pid}); its outcome "
            f"goes to {result.store_uri.rstrip('/')}/runs/run_id={result.run_id}/_mlflow.json"
        )
    if result.mlflow_error:
        console.print(f"[yellow]warning:[/] {result.mlflow_error}")
    if result.message:
        console.print(f"{result.status}: {result.message}")
