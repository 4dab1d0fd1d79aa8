"""Scorer types: a registry from `type` to factory, and `build_scorers` for a suite's list.

Built-in scorers register themselves with `@register_scorer` when their module is imported;
the modules are imported lazily on the first lookup. Third parties add types through the entry
point group ``evalcluster.scorers`` (name = the type, value = ``"module:factory"``), e.g. in
their pyproject.toml::

    [project.entry-points."evalcluster.scorers"]
    bleu = "mypkg.scorers:bleu"

A factory is called as ``factory(name, options)``. When it was decorated with
``register_scorer(..., options=SomeOptionsModel)`` the options arrive validated as that model;
otherwise as the plain dict of the suite's keys.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from evalcluster.errors import SpecError
from evalcluster.scoring.base import JudgedScorer, Scorer, needs_judge
from evalcluster.suite.models import ScorerSpec

ENTRY_POINT_GROUP = "evalcluster.scorers"
_OPTIONS_ATTR = "__evalcluster_scorer_options__"
_BUILTIN_MODULES = (
    "evalcluster.scoring.text",
    "evalcluster.scoring.numeric",
    "evalcluster.scoring.choice",
    "evalcluster.scoring.json_scorer",
    "evalcluster.scoring.custom",
    "evalcluster.scoring.model_graded",
)

ScorerFactory = Callable[[str, Any], Scorer]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Entry:
    factory: ScorerFactory
    options: type[BaseModel] | None


_registry: dict[str, _Entry] = {}
_builtins_loaded = False


def register_scorer(type_name: str, *, options: type[BaseModel] | None = None) -> Callable[[F], F]:
    """Register a factory (or class) called as ``factory(name, options)`` for `type_name`."""

    def decorate(factory: F) -> F:
        if options is not None:
            setattr(factory, _OPTIONS_ATTR, options)
        _registry[type_name] = _Entry(factory, options)
        return factory

    return decorate


def scorer_types() -> list[str]:
    """Every type a suite may name: built-ins, registered ones and installed entry points."""
    _load_builtins()
    names = set(_registry)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def build_scorers(
    specs: Sequence[ScorerSpec], *, targets: Collection[str] | None = None
) -> list[Scorer]:
    """Build one scorer per spec, in order, or raise `SpecError` naming the bad field.

    `targets`, when given, are the suite's target names: a `model_graded` judge must be one.
    """
    scorers: list[Scorer] = []
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        where = f"scorers[{i}]"
        name = spec.column_name
        if name in seen:
            raise SpecError(f"duplicate scorer name {name!r} (set 'name')", field=f"{where}.name")
        seen.add(name)
        scorer = _build_one(spec, where)
        if targets is not None and needs_judge(scorer) and scorer.judge_target not in targets:
            known = ", ".join(sorted(targets)) or "none"
            raise SpecError(
                f"judge {scorer.judge_target!r} is not a target of this suite (targets: {known})",
                field=f"{where}.judge",
            )
        scorers.append(scorer)
    return scorers


def _build_one(spec: ScorerSpec, where: str) -> Scorer:
    entry = _lookup(spec.type, where)
    raw = spec.options()
    options: Any = raw
    if entry.options is not None:
        try:
            options = entry.options.model_validate(raw)
        except ValidationError as exc:
            raise _options_error(exc, entry.options, where) from exc
    try:
        scorer = entry.factory(spec.column_name, options)
    except SpecError as exc:
        field = f"{where}.{exc.field}" if exc.field else where
        raise SpecError(exc.message, field=field) from exc
    except (ValueError, TypeError) as exc:
        raise SpecError(f"invalid options for scorer {spec.type!r}: {exc}", field=where) from exc
    if not isinstance(scorer, Scorer):
        raise SpecError(
            f"the factory of scorer type {spec.type!r} returned {type(scorer).__name__}, "
            "which lacks name/needs_judge/score()",
            field=f"{where}.type",
        )
    if needs_judge(scorer) and not isinstance(scorer, JudgedScorer):
        raise SpecError(
            f"scorer type {spec.type!r} needs a judge but {type(scorer).__name__} lacks "
            "judge_target/judge_messages()/parse_verdict()",
            field=f"{where}.type",
        )
    return scorer


def _lookup(type_name: str, where: str) -> _Entry:
    _load_builtins()
    if type_name in _registry:
        return _registry[type_name]
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=type_name):
        try:
            factory = ep.load()
        except Exception as exc:  # any import-time failure of a plugin is a setup problem
            raise SpecError(
                f"scorer type {type_name!r} from entry point {ep.value!r} failed to load: "
                f"{type(exc).__name__}: {exc}",
                field=f"{where}.type",
            ) from exc
        entry = _Entry(factory, getattr(factory, _OPTIONS_ATTR, None))
        _registry.setdefault(type_name, entry)
        return _registry[type_name]
    known = scorer_types()
    close = difflib.get_close_matches(type_name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise SpecError(
        f"unknown scorer type {type_name!r}{hint} (known: {', '.join(known)})",
        field=f"{where}.type",
    )


def _options_error(exc: ValidationError, model: type[BaseModel], where: str) -> SpecError:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    field = f"{where}.{loc}" if loc else where
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        known = sorted(model.model_fields)
        close = difflib.get_close_matches(loc, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        message = f"unknown option {loc!r}{hint} (options: {', '.join(known)})"
    elif first["type"] == "missing":
        message = f"option {loc!r} is required"
    return SpecError(message, field=field)


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
