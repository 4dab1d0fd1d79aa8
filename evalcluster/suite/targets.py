"""Which of a suite's targets a run evaluates: the one rule for `--target` and `targets`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from evalcluster.errors import SpecError
from evalcluster.suite.loader import LoadedSuite
from evalcluster.suite.models import SuiteSpec

__all__ = ["check_target_names", "select_targets"]


def check_target_names(
    spec: SuiteSpec, names: Sequence[str], *, field: str = "targets[{i}]"
) -> None:
    """Raise `SpecError` for the first of `names` that is not one of the suite's targets
    (judges are not evaluated on their own); `field` is formatted with its index `i`."""
    known = {t.name for t in spec.targets}
    for i, name in enumerate(names):
        if name not in known:
            raise SpecError(
                f"unknown target {name!r} (suite has: {', '.join(sorted(known))})",
                field=field.format(i=i),
            )


def select_targets(
    suite: LoadedSuite, names: Sequence[str], *, field: str = "--target"
) -> LoadedSuite:
    """`suite` with only the targets named in `names`, in the suite's order (every target
    when `names` is empty); the suite version stays the whole suite's. An unknown name is a
    `SpecError` whose field is `field` (the command line's option by default)."""
    if not names:
        return suite
    check_target_names(suite.spec, names, field=field)
    targets = [t for t in suite.spec.targets if t.name in names]
    return dataclasses.replace(suite, spec=suite.spec.model_copy(update={"targets": targets}))
