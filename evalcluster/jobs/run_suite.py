"""The evaluation job: ``python -m evalcluster.jobs.run_suite SUITE.yaml [options]``.

This is what `evalcluster run` calls in-process, what `evalcluster submit` sends as a Ray job
entrypoint, and what a bare `ray job submit --working-dir . -- python -m
evalcluster.jobs.run_suite ...` runs. Inside a Ray job it joins the job's cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from evalcluster.errors import EvalclusterError, SpecError
from evalcluster.exits import EXIT_FAILED, EXIT_OK, report_error
from evalcluster.jobs.display import ProgressDisplay, print_plan, print_result
from evalcluster.jobs.driver import RunResult, run_suite
from evalcluster.jobs.executors import EXECUTOR_NAMES
from evalcluster.jobs.options import DEFAULT_MAX_ERROR_RATE, RunOptions
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.runstate import RunState
from evalcluster.suite.loader import validation_to_spec_error


def _default(option: str) -> Any:
    """A run option's default, as `RunOptions` (the one place defaults live) declares it."""
    return RunOptions.model_fields[option].default


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", help="suite YAML file")
    p.add_argument(
        "--target",
        action="append",
        default=[],
        dest="targets",
        help="only this target (repeatable)",
    )
    p.add_argument("--run-id", help="name the run, or resume the run with this id")
    p.add_argument(
        "--store",
        default=_default("store"),
        help=f"results store: a folder or s3://bucket/prefix (default {_default('store')})",
    )
    p.add_argument("--endpoint-url", help="S3 endpoint (MinIO etc.); default $AWS_ENDPOINT_URL")
    p.add_argument(
        "--tracking-uri",
        default=_default("tracking_uri"),
        help=f"MLflow tracking URI; 'none' skips MLflow (default {_default('tracking_uri')})",
    )
    p.add_argument("--max-samples", type=int, help="evaluate only the first N samples")
    p.add_argument("--budget-usd", type=float, help="stop dispatching once this much is spent")
    p.add_argument("--no-cache", action="store_true", help="do not reuse cached answers")
    p.add_argument("--dry-run", action="store_true", help="validate and show the plan only")
    p.add_argument(
        "--priority",
        type=float,
        default=_default("priority"),
        help="weight of this run's share of shared providers' rate",
    )
    p.add_argument(
        "--max-traced-samples",
        type=int,
        default=_default("max_traced_samples"),
        help=f"samples logged to MLflow as traces (default {_default('max_traced_samples')})",
    )
    p.add_argument(
        "--executor",
        choices=EXECUTOR_NAMES,
        default=_default("executor"),
        help="where shards and provider endpoints run: 'local' is this process, no Ray "
        "(what 'auto' picks without --address); 'ray' starts a Ray of its own for the run, or "
        "joins the cluster at --address (what 'auto' picks with one)",
    )
    p.add_argument(
        "--max-error-rate",
        type=float,
        default=_default("max_error_rate"),
        help="exit 1 when more than this fraction of the rows are errors "
        f"(default {DEFAULT_MAX_ERROR_RATE}; 1 never)",
    )


def options_from_args(args: argparse.Namespace, address: str | None) -> RunOptions:
    tracking = args.tracking_uri
    try:
        return RunOptions(
            run_id=args.run_id,
            targets=args.targets,
            store=args.store,
            endpoint_url=args.endpoint_url,
            tracking_uri=None if (tracking or "").lower() in ("", "none") else tracking,
            address=address,
            executor=getattr(args, "executor", "auto"),
            max_samples=args.max_samples,
            budget_usd=args.budget_usd,
            no_cache=args.no_cache,
            dry_run=args.dry_run,
            priority=args.priority,
            max_traced_samples=args.max_traced_samples,
            max_error_rate=args.max_error_rate,
        )
    except ValidationError as exc:
        error = validation_to_spec_error(exc, "command line")
        raise SpecError(error.message, field="--" + (error.field or "").replace("_", "-")) from exc


def execute(args: argparse.Namespace, address: str | None, *, show_progress: bool) -> int:
    """Run the suite named in `args`; print progress and the summary; return the exit code."""
    suite = prepare_suite(args.suite)
    options = options_from_args(args, address)
    if options.dry_run:
        print_plan(suite, options)
        return EXIT_OK
    # The Ray (and simulators) the run started stop when `session` closes: after the result
    # is shown, so a person does not wait on Ray's shutdown for the table.
    with contextlib.ExitStack() as session:
        with ProgressDisplay(enabled=show_progress) as display:
            result: RunResult = run_suite(
                suite, options, on_progress=display.update, on_phase=display.phase, session=session
            )
            display.phase(result.status)
        print_result(result, suite)
        too_many = too_many_errors(result.summary, options.max_error_rate)
        if too_many:
            print(f"evalcluster: error: {too_many}", file=sys.stderr)
            code = EXIT_FAILED
        else:
            code = EXIT_OK if result.status == RunState.FINISHED else EXIT_FAILED
        sys.stdout.flush()
        sys.stderr.flush()
    return code


def too_many_errors(summary: Mapping[str, Any] | None, max_rate: float) -> str | None:
    """One line saying how many of the run's rows are errors, and of which kinds, when more
    than `max_rate` of them are (the run "finished", but its results say little); else None.

    Only the command's exit status follows from it: the run's status (manifest, HTTP service)
    stays what the driver made it."""
    targets = (summary or {}).get("targets") or {}
    rows = sum(t.get("rows", 0) for t in targets.values())
    errors = sum(t.get("errors", 0) for t in targets.values())
    if not rows or errors / rows <= max_rate:
        return None
    kinds: dict[str, int] = {}
    for t in targets.values():
        for kind, n in (t.get("error_kinds") or {}).items():
            kinds[kind] = kinds.get(kind, 0) + n
    by_kind = ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
    return (
        f"{errors} of {rows} rows are errors"
        + (f" ({by_kind})" if by_kind else "")
        + f", more than --max-error-rate {max_rate:g}; see the error_kind column of the "
        "results, and pass --max-error-rate 1 to accept them"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evalcluster.jobs.run_suite")
    add_run_arguments(parser)
    parser.add_argument("--address", help="Ray address; inside a Ray job the job's cluster")
    args = parser.parse_args(argv)
    # Inside `ray job submit` RAY_ADDRESS is set: join that cluster rather than start one.
    address = args.address or os.environ.get("RAY_ADDRESS") or None
    try:
        return execute(args, address, show_progress=sys.stderr.isatty())
    except EvalclusterError as exc:
        return report_error(exc)


if __name__ == "__main__":
    sys.exit(main())
