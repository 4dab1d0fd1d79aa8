"""The `evalcluster` command. Exit codes: 0 done, 1 run failed, 2 usage or invalid suite."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from evalcluster.errors import EvalclusterError, SpecError
from evalcluster.jobs.run_suite import EXIT_FAILED, EXIT_USAGE, add_run_arguments


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep its one-line style
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"evalcluster: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="evalcluster", description="Distributed LLM evaluation on Ray.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a suite (embedded Ray, or --address to join a cluster)")
    add_run_arguments(run)
    run.add_argument("--address", help="Ray address: auto, ray://HOST:10001, HOST:6379")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    submit = sub.add_parser("submit", help="submit a suite as a Ray job")
    add_run_arguments(submit)
    submit.add_argument("--address", required=True, help="Ray dashboard, http://HEAD:8265")
    submit.add_argument("--follow", action="store_true", help="stream the job's logs until it ends")
    submit.add_argument("--working-dir", default=".", help="uploaded as the job's working dir")

    serve = sub.add_parser("serve", help="start the HTTP service on Ray Serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--config", help="service configuration (tenants, provider registry, dataset roots)"
    )
    serve.add_argument("--store", help="results store (default ./evalstore, or the config's)")
    serve.add_argument("--tracking-uri", help="MLflow (default sqlite:///mlflow.db; none: off)")
    serve.add_argument("--address", help="Ray address to join; default embedded")
    serve.add_argument("--api-keys-file", help="file with one API key per line (a tenant each)")

    simulate = sub.add_parser("simulate", help="run the provider simulator", add_help=False)
    simulate.add_argument("args", nargs=argparse.REMAINDER)

    runs = sub.add_parser("runs", help="list runs in a store")
    runs.add_argument("--store", default="./evalstore")
    runs.add_argument("--endpoint-url")
    runs.add_argument("--format", choices=["table", "json", "csv"], default="table")

    results = sub.add_parser("results", help="show a run's results")
    results.add_argument("run_id")
    results.add_argument("--store", default="./evalstore")
    results.add_argument("--endpoint-url")
    results.add_argument("--target")
    results.add_argument("--limit", type=int, default=50)
    results.add_argument("--offset", type=int, default=0)
    results.add_argument("--format", choices=["table", "json", "csv"], default="table")

    compare = sub.add_parser("compare", help="paired comparison of two runs")
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    compare.add_argument("--store", default="./evalstore")
    compare.add_argument("--endpoint-url")
    compare.add_argument("--format", choices=["table", "json", "csv"], default="table")

    providers = sub.add_parser("providers", help="show provider endpoints and their state")
    providers.add_argument("--suite", help="list this suite's providers")
    providers.add_argument("--address", help="Ray address of a running cluster (default: auto)")
    providers.add_argument("--format", choices=["table", "json"], default="table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:
        from evalcluster.simulator.__main__ import main as simulate_main

        return simulate_main(argv[1:])
    args = build_parser().parse_args(argv)
    from evalcluster import commands

    handler = getattr(commands, f"cmd_{args.command}")
    try:
        return handler(args)
    except SpecError as exc:
        print(f"evalcluster: error: {exc.one_line()}", file=sys.stderr)
        return EXIT_USAGE
    except EvalclusterError as exc:
        print(f"evalcluster: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("evalcluster: interrupted", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
