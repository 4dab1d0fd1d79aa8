"""Handlers of the `evalcluster` subcommands (the parser is in cli.py)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from evalcluster.errors import EvalclusterError, SpecError
from evalcluster.jobs.prepare import prepare_suite
from evalcluster.jobs.run_suite import EXIT_FAILED, EXIT_OK, execute, options_from_args

out = Console(file=sys.stdout, width=160)
AGENT_WAIT_S = 60.0


def cmd_run(args: argparse.Namespace) -> int:
    return execute(args, args.address, show_progress=not args.quiet)


def cmd_submit(args: argparse.Namespace) -> int:
    from ray.job_submission import JobStatus, JobSubmissionClient

    prepare_suite(args.suite)  # a bad suite fails here, before anything reaches the cluster
    options = options_from_args(args, None)
    entrypoint = [
        "python",
        "-m",
        "evalcluster.jobs.run_suite",
        args.suite,
        "--store",
        _absolute_store(options.store),
        "--tracking-uri",
        _absolute_tracking(options.tracking_uri),
    ]
    for name, flag in (
        ("run_id", "--run-id"),
        ("max_samples", "--max-samples"),
        ("budget_usd", "--budget-usd"),
        ("endpoint_url", "--endpoint-url"),
    ):
        value = getattr(options, name)
        if value is not None:
            entrypoint += [flag, str(value)]
    for target in options.targets:
        entrypoint += ["--target", target]
    if options.no_cache:
        entrypoint.append("--no-cache")
    if options.priority != 1.0:
        entrypoint += ["--priority", str(options.priority)]
    client = JobSubmissionClient(args.address)
    job_id = _submit_with_retry(
        client,
        entrypoint=shlex.join(entrypoint),
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
    if uri is None:
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
        score_cols = [c for c in table.column_names if c.startswith("score_")]
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
    for run_id in (args.run_a, args.run_b):
        _require_run(store, run_id)
    rows = compare_runs(store, args.run_a, args.run_b)
    _emit(rows, args.format, title=f"{args.run_b} minus {args.run_a} (paired)")
    return EXIT_OK


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
    live = _live_provider_status(args.address)
    if live is None:
        if not args.suite:
            print(
                "no Ray cluster reachable; pass --suite to list a suite's providers",
                file=sys.stderr,
            )
        return EXIT_OK
    _emit(live, args.format, title="provider actors")
    return EXIT_OK


def _live_provider_status(address: str | None) -> list[dict[str, Any]] | None:
    import ray

    from evalcluster.actors.provider import provider_status_rows

    try:
        ray.init(
            address=address or "auto",
            namespace="evalcluster",
            log_to_driver=False,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError):
        return None
    try:
        return provider_status_rows()
    finally:
        ray.shutdown()


def _require_run(store: Any, run_id: str) -> None:
    from evalcluster.store.manifest import read_manifest

    if read_manifest(store, run_id) is None:
        raise EvalclusterError(f"no run {run_id!r} in {store.uri}")


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
