"""The `evalcluster` command. Exit codes: 0 done, 1 run failed, 2 usage or invalid suite.

`evalcluster --help`, `runs`, `results` and `compare` import neither Ray nor MLflow: the run
options (`add_run_arguments`) live beside the Ray driver, so they are added, and Ray imported,
only for the commands that take them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from evalcluster.errors import EvalclusterError
from evalcluster.exits import EXIT_FAILED, EXIT_USAGE, report_error
from evalcluster.store.layout import DEFAULT_STORE

# The same codes as evalcluster.jobs.run_suite's, which imports Ray.
RUN_COMMANDS = ("run", "submit")  # the commands that take the run options
FORMAT_HELP = "output format (default table)"
STORE_HELP = f"results store: a folder or s3://bucket/prefix (default {DEFAULT_STORE})"
ENDPOINT_HELP = "S3 endpoint (MinIO etc.); default $AWS_ENDPOINT_URL"


def package_version() -> str:
    try:
        return version("evalcluster")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep its one-line style
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"evalcluster: error: {message}\n")


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    from evalcluster.jobs.run_suite import add_run_arguments  # imports Ray

    add_run_arguments(p)


def build_parser(*, run_options: bool = True) -> argparse.ArgumentParser:
    """The whole command line; `run_options=False` leaves the run options out of `run` and
    `submit` (adding them imports Ray), for parsing any other command."""
    parser = _Parser(prog="evalcluster", description="Distributed LLM evaluation on Ray.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        parser_class=_Parser,
        help="see `evalcluster COMMAND --help` for a command's options",
    )
    run = sub.add_parser(
        "run",
        help="run a suite in this process, or on a Ray cluster with --address",
        description="Run a suite. Without --address it runs in this process, without Ray "
        "(--executor ray starts a Ray of its own for the run, never one found on this machine "
        "or in $RAY_ADDRESS, and stops it after).",
    )
    if run_options:
        _add_run_arguments(run)
    run.add_argument(
        "--address",
        help="join this Ray cluster: auto, ray://HOST:10001, HOST:6379 "
        "(default: run in this process)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    submit = sub.add_parser(
        "submit",
        help="submit a suite as a Ray job",
        description="Submit a suite as a Ray job; every run option is forwarded to the job. "
        "With --dry-run nothing is submitted and the cluster is not contacted: the suite and "
        "options are validated here, and the plan and the job's command line are printed.",
    )
    if run_options:
        _add_run_arguments(submit)
    submit.add_argument("--address", required=True, help="Ray dashboard, http://HEAD:8265")
    submit.add_argument("--follow", action="store_true", help="stream the job's logs until it ends")
    submit.add_argument("--working-dir", default=".", help="uploaded as the job's working dir")

    serve = sub.add_parser("serve", help="start the HTTP service on Ray Serve")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    serve.add_argument(
        "--config", help="service configuration (tenants, provider registry, dataset roots)"
    )
    serve.add_argument("--store", help="results store (default ./evalstore, or the config's)")
    serve.add_argument("--tracking-uri", help="MLflow (default sqlite:///mlflow.db; none: off)")
    serve.add_argument("--address", help="Ray address to join; default embedded")
    serve.add_argument("--api-keys-file", help="file with one API key per line (a tenant each)")

    simulate = sub.add_parser("simulate", help="run the provider simulator", add_help=False)
    simulate.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        help="the simulator's options: see `evalcluster simulate --help`",
    )

    runs = sub.add_parser("runs", help="list runs in a store")
    runs.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    runs.add_argument("--endpoint-url", help=ENDPOINT_HELP)
    runs.add_argument(
        "--format", choices=["table", "json", "csv"], default="table", help=FORMAT_HELP
    )

    results = sub.add_parser("results", help="show a run's results")
    results.add_argument("run_id", help="the run's id (see `evalcluster runs`)")
    results.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    results.add_argument("--endpoint-url", help=ENDPOINT_HELP)
    results.add_argument("--target", help="only this target's results")
    results.add_argument(
        "--limit", type=int, default=50, help="at most this many rows (default 50)"
    )
    results.add_argument("--offset", type=int, default=0, help="skip this many rows first")
    results.add_argument(
        "--format", choices=["table", "json", "csv"], default="table", help=FORMAT_HELP
    )

    compare = sub.add_parser(
        "compare",
        help="paired comparison of two runs",
        description="Paired comparison of two runs of the same suite, on the samples they "
        "share: B minus A per target and scorer. Runs of different suites exit 2.",
    )
    compare.add_argument("run_a", help="the baseline run's id")
    compare.add_argument("run_b", help="the run compared with it")
    compare.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    compare.add_argument("--endpoint-url", help=ENDPOINT_HELP)
    compare.add_argument(
        "--format", choices=["table", "json", "csv"], default="table", help=FORMAT_HELP
    )

    providers = sub.add_parser(
        "providers",
        help="show provider endpoints and their state",
        description="With --suite, list the suite's configured providers. The provider "
        "actors' live state is read only from the cluster named by --address or $RAY_ADDRESS: "
        "it never attaches to a Ray it happens to find on this machine. Without either, and "
        "without --suite, it exits 2.",
    )
    providers.add_argument("--suite", help="list this suite's providers")
    providers.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS") or None,
        help="Ray cluster to read the provider actors from: HOST:6379 or ray://HOST:10001 "
        "(default $RAY_ADDRESS; none: live state is not shown)",
    )
    providers.add_argument("--format", choices=["table", "json"], default="table", help=FORMAT_HELP)

    from evalcluster.jobs.plan import add_plan_arguments  # imports neither Ray nor MLflow

    add_plan_arguments(sub.add_parser("plan", help="sample size, detectable difference, cost"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:
        from evalcluster.simulator.cli import main as simulate_main

        return simulate_main(argv[1:])
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(run_options=command in RUN_COMMANDS).parse_args(argv)
    from evalcluster import commands

    handler = getattr(commands, f"cmd_{args.command}")
    try:
        return handler(args)
    except EvalclusterError as exc:
        return report_error(exc)
    except KeyboardInterrupt:
        print("evalcluster: interrupted", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
