"""The command line's exit statuses, and how an error ends a command (`evalcluster` and
`python -m evalcluster.jobs.run_suite` alike)."""

from __future__ import annotations

import sys

from evalcluster.errors import EvalclusterError, SpecError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def report_error(exc: EvalclusterError) -> int:
    """Print the error as one line on stderr; the exit status: usage (2) for bad input in a
    suite or option, failed (1) for anything else."""
    if isinstance(exc, SpecError):
        print(f"evalcluster: error: {exc.one_line()}", file=sys.stderr)
        return EXIT_USAGE
    print(f"evalcluster: error: {exc}", file=sys.stderr)
    return EXIT_FAILED
