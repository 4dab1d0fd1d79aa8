"""Handlers of the `evalcluster` subcommands (the parser is in cli.py).

Ray, MLflow and the driver (evalcluster.jobs.run_suite) are imported inside the handlers that
need them, so that `runs`, `results` and `compare` start quickly and never touch Ray.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from evalcluster.errors import EvalclusterError, SpecError
from evalcluster.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from evalcluster.jobs.prepare import prepare_suite

if TYPE_CHECKING:
    from evalcluster.store.manifest import RunManifest

out = Console(width=160)  # sys.stdout as it is at each write (tests replace it)
AGENT_WAIT_S = 60.0
JOB_MODULE = "evalcluster.jobs.run_suite"
# Run options `submit` acts on itself instead of forwarding them to the job.
SUBMIT_ONLY_OPTIONS = frozenset({"dry_run"})


def cmd_run(args: argparse.Namespace) -> int:
    from evalcluster.jobs.run_suite import execute

    return execute(args, args.address, show_progress=not args.quiet)


def cmd_submit(args: argparse.Namespace) -> int:
    """Submit the suite as a Ray job. With --dry-run: validate here, print the plan and the
    job's command line, and return before anything contacts the cluster."""
    from evalcluster.jobs.display import print_plan
    from evalcluster.jobs.driver import select_targets
    from evalcluster.jobs.run_suite import options_from_args

    # A bad suite, option or --target fails here, before anything reaches the cluster.
    options = options_from_args(args, None)
    suite = select_targets(prepare_suite(args.suite), options.targets)
    entrypoint = shlex.join(job_entrypoint(args))
    if options.dry_run:
        print_plan(suite, options)
        print("dry run: nothing was submitted. The job would be:")
        print(f"  address: {args.address}")
        print(f"  working dir: {Path(args.working_dir).resolve()}")
        print(f"  entrypoint: {entrypoint}", flush=True)
        return EXIT_OK

    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(args.address)
    job_id = _submit_with_retry(
        client,
        entrypoint=entrypoint,
        runtime_env={"working_dir": args.working_dir},
        metadata={"evalcluster.suite": Path(args.suite).name},
    )
    print(job_id, flush=True)
    if not args.follow:
        return EXIT_OK

    async def follow() -> None:
        async for lines in client.tail_job_logs(job_id):
            sys.stdout.write(lines)
            sys.stdout.flush()

    asyncio.run(follow())
    status = client.get_job_status(job_id)
    print(f"job {job_id}: {status}", file=sys.stderr)
    return EXIT_OK if status == JobStatus.SUCCEEDED else EXIT_FAILED


def job_entrypoint(args: argparse.Namespace) -> list[str]:
    """The job's command line: ``python -m evalcluster.jobs.run_suite`` with every run option
    in `args`, read off the parser `add_run_arguments` builds, so an option added there is
    forwarded with no change here. Only SUBMIT_ONLY_OPTIONS stay behind. The store and the
    MLflow database are made absolute: the job runs in a working dir of its own."""
    from evalcluster.jobs.run_suite import add_run_arguments

    parser = argparse.ArgumentParser(add_help=False)
    add_run_arguments(parser)
    values = {
        **vars(args),
        "store": _absolute_store(args.store),
        "tracking_uri": _absolute_tracking(args.tracking_uri),
    }
    command = ["python", "-m", JOB_MODULE]
    for action in parser._actions:
        if action.dest in SUBMIT_ONLY_OPTIONS:
            continue
        value = values[action.dest]
        if not action.option_strings:  # the suite
            command.append(str(value))
            continue
        flag = max(action.option_strings, key=len)
        if isinstance(action, argparse._StoreTrueAction):
            command += [flag] if value else []
        elif isinstance(action, argparse._AppendAction):
            for item in value or ():
                command += [flag, str(item)]
        elif isinstance(action, argparse._StoreAction) and action.nargs is None:
            command += [flag, str(value)] if value is not None else []
        else:  # a kind of option this does not know how to write back: fail, never drop it
            raise TypeError(f"cannot forward {flag} ({type(action).__name__}) to the job")
    return command


def _submit_with_retry(client: Any, **job: Any) -> str:
    """Submit; a head that has just started answers "no available agent" for a few seconds."""
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _absolute_store(store: str) -> str:
    if "://" in store:
        return store
    return str(Path(store).resolve())


def _absolute_tracking(uri: str | None) -> str:
    if not uri or uri.lower() == "none":
        return "none"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    return uri


def cmd_serve(args: argparse.Namespace) -> int:
    from evalcluster.serve.launch import serve_forever

    return serve_forever(
        host=args.host,
        port=args.port,
        store=args.store,
        tracking_uri=args.tracking_uri,
        address=args.address,
        api_keys_file=args.api_keys_file,
        config=args.config,
    )


def cmd_runs(args: argparse.Namespace) -> int:
    from evalcluster.store.fs import open_store
    from evalcluster.store.lake import list_run_ids
    from evalcluster.store.manifest import read_manifest

    store = open_store(args.store, endpoint_url=args.endpoint_url)
    rows = []
    for run_id in list_run_ids(store):
        m = read_manifest(store, run_id)
        if m is None:
            continue
        rows.append(
            {
                "run_id": run_id,
                "suite": m.suite,
                "version": m.suite_version,
                "status": m.status,
                "targets": ",".join(m.targets),
                "created_at": m.created_at.isoformat(timespec="seconds"),
            }
        )
    rows.sort(key=lambda r: r["created_at"])
    _emit(rows, args.format, title=f"runs in {store.uri}")
    return EXIT_OK


def cmd_results(args: argparse.Namespace) -> int:
    from evalcluster.rows import SCORE_PREFIX
    from evalcluster.store.fs import open_store
    from evalcluster.store.lake import read_results

    store = open_store(args.store, endpoint_url=args.endpoint_url)
    _require_run(store, args.run_id)
    if args.limit < 0 or args.offset < 0:
        raise SpecError("must not be negative", field="--limit/--offset")
    table = read_results(
        store, args.run_id, target=args.target, offset=args.offset, limit=args.limit
    )
    rows = table.to_pylist()
    if args.format == "table":
        score_cols = [c for c in table.column_names if c.startswith(SCORE_PREFIX)]
        keep = [
            "target",
            "sample_id",
            "epoch",
            "output",
            "reference",
            *score_cols,
            "error_kind",
            "cost_usd",
            "latency_ms",
        ]
        rows = [{k: r.get(k) for k in keep} for r in rows]
    _emit(rows, args.format, title=f"results of {args.run_id}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from evalcluster.jobs.compare import compare_runs
    from evalcluster.store.fs import open_store

    store = open_store(args.store, endpoint_url=args.endpoint_url)
    a, b = (_require_run(store, run_id) for run_id in (args.run_a, args.run_b))
    if a.suite != b.suite:
        print(
            f"evalcluster: error: {args.run_a} and {args.run_b} are runs of different suites "
            f"({a.suite!r} and {b.suite!r}); compare runs of the same suite",
            file=sys.stderr,
        )
        return EXIT_USAGE
    rows = compare_runs(store, args.run_a, args.run_b)
    _emit(rows, args.format, title=f"{args.run_b} minus {args.run_a} (paired)")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from evalcluster.jobs.plan import cmd_plan as plan

    return plan(args)


def cmd_providers(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    if args.suite:
        suite = prepare_suite(args.suite)
        for name, p in suite.spec.providers.items():
            rows.append(
                {
                    "provider": name,
                    "kind": p.kind,
                    "base_url": p.base_url or "(local)",
                    "rpm": p.rpm,
                    "tpm": p.tpm,
                    "concurrency": p.max_concurrency,
                    "breaker": f"{p.breaker.failure_threshold} / {p.breaker.reset_timeout_s}s",
                    "fallback": ",".join(p.fallback),
                }
            )
        _emit(rows, args.format, title="configured providers")
    if not args.address:
        print(
            "evalcluster: no Ray cluster given: pass --address (or set RAY_ADDRESS) to see the "
            "provider actors' live state"
            + ("" if args.suite else ", or --suite to list a suite's providers"),
            file=sys.stderr,
        )
        return EXIT_OK if args.suite else EXIT_USAGE
    live = _live_provider_status(args.address)
    if live is None:
        print(f"evalcluster: error: no Ray cluster reachable at {args.address}", file=sys.stderr)
        return EXIT_FAILED
    _emit(live, args.format, title="provider actors")
    return EXIT_OK


def _live_provider_status(address: str) -> list[dict[str, Any]] | None:
    """The provider actors' rows from the cluster at `address`, which the user named (no
    implicit "auto": that attaches to whatever cluster runs on this machine); None if it
    cannot be reached."""
    import ray

    from evalcluster.actors.provider import provider_status_rows
    from evalcluster.cluster import NAMESPACE

    try:
        ray.init(
            address=address,
            namespace=NAMESPACE,
            log_to_driver=False,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError):
        return None
    try:
        return provider_status_rows()
    finally:
        ray.shutdown()


def _require_run(store: Any, run_id: str) -> RunManifest:
    """The run's manifest; no such run is an error."""
    from evalcluster.store.manifest import read_manifest

    manifest = read_manifest(store, run_id)
    if manifest is None:
        raise EvalclusterError(f"no run {run_id!r} in {store.uri}")
    return manifest


def _emit(rows: list[dict[str, Any]], fmt: str, *, title: str) -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=2, default=str))
        return
    if fmt == "csv":
        if rows:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return
    table = Table(title=title)
    if not rows:
        out.print(f"{title}: none")
        return
    for column in rows[0]:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row.values()))
    out.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
