"""What a person sees: a live progress bar while a run goes, a summary table when it ends."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from evalcluster.jobs.options import RunOptions
from evalcluster.spec.loader import LoadedSuite

console = Console(stderr=True)
stdout = Console(file=sys.stdout, width=140)


class ProgressDisplay:
    """samples done/total, cost, errors and rate, redrawn from run-actor snapshots."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._progress: Progress | None = None
        self._task = None
        self._last_done = 0

    def __enter__(self) -> ProgressDisplay:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
                refresh_per_second=5,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("samples", total=None, stats="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, snapshot: dict[str, Any]) -> None:
        if self._progress is None or self._task is None:
            return
        elapsed = self._progress.tasks[0].elapsed or 0.0
        rate = snapshot["done"] / elapsed if elapsed > 0 else 0.0
        stats = f"${snapshot['cost_usd']:.4f}  errors {snapshot['errors']}  {rate:,.0f}/s"
        self._progress.update(
            self._task, completed=snapshot["done"], total=snapshot["total"], stats=stats
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


def print_result(result: Any, suite: LoadedSuite) -> None:
    summary = result.summary or {}
    targets = summary.get("targets", {})
    scorers = [s.name or s.type for s in suite.spec.scorers]
    table = Table(title=f"run {result.run_id}: {result.status}  ({result.wall_s:.1f}s)")
    table.add_column("target")
    table.add_column("samples", justify="right")
    for name in scorers:
        table.add_column(name, justify="right")
    for column in ("errors", "tokens in/out", "cost $", "p50 ms"):
        table.add_column(column, justify="right")
    for name, t in targets.items():
        cells = [name, str(t.get("samples", 0))]
        for scorer in scorers:
            s = (t.get("scorers") or {}).get(scorer) or {}
            mean, low, high = s.get("mean"), s.get("ci_low"), s.get("ci_high")
            cells.append(
                "-"
                if mean is None
                else f"{mean:.3f} [{low:.3f}, {high:.3f}]"
                if low is not None
                else f"{mean:.3f}"
            )
        cells += [
            str(t.get("errors", 0)),
            f"{t.get('input_tokens', 0):,}/{t.get('output_tokens', 0):,}",
            f"{t.get('cost_usd', 0.0):.4f}",
            "-" if t.get("latency_ms_p50") is None else f"{t['latency_ms_p50']:.0f}",
        ]
        table.add_row(*cells)
    stdout.print(table)
    stdout.print(f"results: {result.store_uri.rstrip('/')}/runs/run_id={result.run_id}")
    if result.mlflow_run_id:
        stdout.print(f"mlflow run: {result.mlflow_run_id}")
    if result.mlflow_error:
        console.print(f"[yellow]warning:[/] {result.mlflow_error}")
    if result.message:
        console.print(f"{result.status}: {result.message}")
