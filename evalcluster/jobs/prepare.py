"""Everything checked before a run writes anything: suite, scorers, judges, provider keys."""

from __future__ import annotations

from pathlib import Path

from evalcluster.errors import SpecError
from evalcluster.scoring import build_scorers
from evalcluster.suite.loader import LoadedSuite, load_suite, load_suite_text
from evalcluster.suite.rules import SubmissionRules


def prepare_suite(path: str | Path) -> LoadedSuite:
    return validate_suite(load_suite(path))


def prepare_suite_text(
    text: str, *, location: str, base_dir: Path, rules: SubmissionRules | None = None
) -> LoadedSuite:
    """Load and check a suite given as text; `rules` bind a suite submitted over HTTP."""
    return validate_suite(load_suite_text(text, location=location, base_dir=base_dir, rules=rules))


def validate_suite(suite: LoadedSuite) -> LoadedSuite:
    try:
        scorers = build_scorers(suite.spec.scorers)
        judges = {t.name for t in (*suite.spec.targets, *suite.spec.judges)}
        for i, scorer in enumerate(scorers):
            judge = getattr(scorer, "judge_target", None)
            if getattr(scorer, "needs_judge", False) and judge not in judges:
                raise SpecError(
                    f"judge target {judge!r} is not in targets or judges",
                    field=f"scorers[{i}].judge",
                )
        _check_providers(suite)
    except SpecError as exc:
        if exc.location is None:
            raise SpecError(exc.message, field=exc.field, location=suite.location) from exc
        raise
    return suite


def _check_providers(suite: LoadedSuite) -> None:
    """Build each provider's adapter once: a missing key or a refused URL fails here."""
    from evalcluster.providers import build_adapter

    providers = suite.spec.providers
    used: list[str] = []
    queue = [t.provider for t in (*suite.spec.targets, *suite.spec.judges)]
    while queue:
        name = queue.pop()
        if name not in used:
            used.append(name)
            queue.extend(providers[name].fallback)
    for name in used:
        config = providers[name]
        if config.kind == "simulated" and not config.base_url:
            continue  # the run starts its simulator and fills base_url
        build_adapter(name, config)
