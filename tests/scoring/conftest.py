"""Fixtures shared by the scoring tests."""

from __future__ import annotations

import pytest

from evalcluster.scoring import registry
from evalcluster.spec.models import ScorerSpec


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scorer types a test registers disappear when it ends."""
    registry.scorer_types()  # load the built-ins into the real registry first
    monkeypatch.setattr(registry, "_registry", dict(registry._registry))


def build_one(type_name: str, **options: object):
    """Build a single scorer the way a suite would."""
    return registry.build_scorers([ScorerSpec(type=type_name, **options)])[0]
