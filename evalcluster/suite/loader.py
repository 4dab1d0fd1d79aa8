"""Load a suite file: parse YAML, validate, resolve references, compute its version.

Every problem becomes one `SpecError` whose message names the file and the field, e.g.
``examples/bad.yaml: dataset.path: file not found: nope.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from evalcluster.errors import SpecError
from evalcluster.suite.datasets import DatasetRef, resolve_dataset, scan_dataset
from evalcluster.suite.models import ProviderConfig, SuiteSpec
from evalcluster.suite.rules import SubmissionRules, check_nesting

VERSION_LENGTH = 16


@dataclass(frozen=True)
class LoadedSuite:
    """A validated suite with everything resolved that a run needs."""

    spec: SuiteSpec
    text: str  # the suite file as written
    location: str  # where it came from (a path, or a label such as "http")
    dataset: DatasetRef
    dataset_sha256: str
    columns: tuple[str, ...]
    version: str


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses anchors and aliases, before anything is expanded."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(
                f"line {event.start_mark.line + 1}: YAML aliases (*name) are not accepted here"
            )
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise yaml.YAMLError(
                f"line {event.start_mark.line + 1}: YAML anchors (&name) are not accepted here"
            )
        return super().compose_node(parent, index)


def parse_yaml(text: str, location: str, *, allow_aliases: bool = True) -> dict[str, Any]:
    """The YAML mapping in `text`; SpecError naming the line on bad YAML.

    `allow_aliases` False refuses anchors and aliases (hostile input: a few hundred bytes of
    nested aliases expand to gigabytes) and caps nesting at `MAX_NESTING` levels.
    """
    try:
        loader = yaml.SafeLoader if allow_aliases else _NoAliasLoader
        data = yaml.load(text, Loader=loader)  # noqa: S506 - SafeLoader or a subclass
    except RecursionError:
        raise SpecError("invalid YAML: nested too deeply", location=location) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"invalid YAML: {where}{problem}", location=location) from exc
    if not isinstance(data, dict):
        raise SpecError("a suite file must be a YAML mapping", location=location)
    if not allow_aliases:
        try:
            check_nesting(data)
        except SpecError as exc:
            raise SpecError(exc.message, location=location) from None
    return data


def field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validation_to_spec_error(exc: ValidationError, location: str, prefix: str = "") -> SpecError:
    first = exc.errors()[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    path = field_path(loc)
    if prefix:
        path = f"{prefix}.{path}" if path else prefix
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "required field is missing"
    elif first["type"] == "extra_forbidden":
        message = "unknown field"
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return SpecError(message, field=path or None, location=location)


def load_providers_file(path: Path, location: str) -> dict[str, ProviderConfig]:
    if not path.is_file():
        raise SpecError(f"file not found: {path}", field="providers_file", location=location)
    data = parse_yaml(path.read_text(), str(path))
    data = data.get("providers", data)
    out: dict[str, ProviderConfig] = {}
    for name, raw in data.items():
        try:
            out[name] = ProviderConfig.model_validate(raw)
        except ValidationError as exc:
            raise validation_to_spec_error(exc, str(path), prefix=f"providers.{name}") from exc
    return out


def template_fields(template: str) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise SpecError(f"invalid template: {exc}", field="prompt") from exc
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in parsed if name}


def load_suite(path: str | Path) -> LoadedSuite:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"file not found: {path}", location=str(path))
    return load_suite_text(path.read_text(), location=str(path), base_dir=path.parent)


def load_suite_text(
    text: str, *, location: str, base_dir: Path, rules: SubmissionRules | None = None
) -> LoadedSuite:
    """Load a suite from its text. With `rules` (a suite submitted to the service) providers
    and the dataset are resolved under them and relative paths mean nothing on the server."""
    data = parse_yaml(text, location, allow_aliases=rules is None)
    try:
        spec = SuiteSpec.model_validate(data)
    except ValidationError as exc:
        raise validation_to_spec_error(exc, location) from exc
    try:
        return _resolve(spec, text, location, base_dir, rules)
    except SpecError as exc:
        if exc.location is None:
            raise SpecError(exc.message, field=exc.field, location=location) from exc
        raise


def _resolve(
    spec: SuiteSpec, text: str, location: str, base_dir: Path, rules: SubmissionRules | None
) -> LoadedSuite:
    providers = dict(spec.providers)
    if rules is not None:
        providers = rules.providers_for(spec)
    elif spec.providers_file:
        shared_path = Path(spec.providers_file)
        if not shared_path.is_absolute() and (base_dir / shared_path).is_file():
            shared_path = base_dir / shared_path
        shared = load_providers_file(shared_path, location)
        providers = {**shared, **providers}
    spec = spec.model_copy(update={"providers": providers})
    _check_provider_references(spec)
    _check_compare(spec)

    if rules is not None and rules.datasets is not None:
        dataset = rules.datasets.resolve(spec.dataset.path, spec.dataset.format)
    elif rules is not None:
        raise SpecError("this service accepts no dataset paths", field="dataset.path")
    else:
        dataset = resolve_dataset(spec.dataset.path, spec.dataset.format, base_dir)
    # One read of the whole file: its hash, columns, encoding, parse and duplicate ids, so a
    # file a run would fail on (or silently lose samples of) is refused here.
    scan = scan_dataset(dataset, id_column=spec.dataset.id)
    _check_columns(spec, scan.columns)
    if scan.duplicate_ids is not None:
        raise SpecError(scan.duplicate_ids.message(dataset), field="dataset.id")
    return LoadedSuite(
        spec=spec,
        text=text,
        location=location,
        dataset=scan.ref(dataset),
        dataset_sha256=scan.sha256,
        columns=scan.columns,
        version=suite_version(spec, scan.sha256),
    )


def _check_provider_references(spec: SuiteSpec) -> None:
    for group, targets in (("targets", spec.targets), ("judges", spec.judges)):
        for i, target in enumerate(targets):
            if target.provider not in spec.providers:
                known = ", ".join(sorted(spec.providers)) or "none"
                raise SpecError(
                    f"unknown provider {target.provider!r} (defined: {known})",
                    field=f"{group}[{i}].provider",
                )
    for name, provider in spec.providers.items():
        for j, fallback in enumerate(provider.fallback):
            if fallback not in spec.providers:
                raise SpecError(
                    f"unknown fallback provider {fallback!r}",
                    field=f"providers.{name}.fallback[{j}]",
                )
            if fallback == name:
                raise SpecError(
                    "a provider cannot fall back to itself", field=f"providers.{name}.fallback[{j}]"
                )


def _check_compare(spec: SuiteSpec) -> None:
    compare = spec.compare
    if compare is None:
        return
    targets = [t.name for t in spec.targets]
    for name in ("a", "b"):
        if getattr(compare, name) not in targets:
            raise SpecError(
                f"unknown target {getattr(compare, name)!r} (targets: {', '.join(targets)})",
                field=f"compare.{name}",
            )
    if compare.a == compare.b:
        raise SpecError("a and b must be two different targets", field="compare.b")
    scorers = [s.column_name for s in spec.scorers]
    if compare.scorer is not None and compare.scorer not in scorers:
        raise SpecError(
            f"unknown scorer {compare.scorer!r} (scorers: {', '.join(scorers)})",
            field="compare.scorer",
        )


def _check_columns(spec: SuiteSpec, columns: tuple[str, ...]) -> None:
    known = set(columns)
    listed = ", ".join(columns)
    source = spec.dataset
    named = {
        "dataset.input": source.input,
        "dataset.id": source.id,
        "dataset.target": source.target,
    }
    for field, column in named.items():
        if column is not None and column not in known:
            raise SpecError(
                f"column {column!r} not in the dataset (columns: {listed})", field=field
            )
    for i, column in enumerate(source.metadata):
        if column not in known:
            raise SpecError(
                f"column {column!r} not in the dataset (columns: {listed})",
                field=f"dataset.metadata[{i}]",
            )
    for i, column in enumerate(spec.group_by):
        if column not in known:
            raise SpecError(
                f"column {column!r} not in the dataset (columns: {listed})", field=f"group_by[{i}]"
            )
    if spec.cluster is not None and spec.cluster not in known:
        raise SpecError(
            f"column {spec.cluster!r} not in the dataset (columns: {listed})", field="cluster"
        )
    for field, template in (("prompt", spec.prompt), ("system", spec.system)):
        if template is None:
            continue
        missing = sorted(template_fields(template) - known)
        if missing:
            raise SpecError(
                f"template variable {{{missing[0]}}} is not a dataset column (columns: {listed})",
                field=field,
            )


def suite_version(spec: SuiteSpec, dataset_sha256: str) -> str:
    """Content hash of the resolved spec, the dataset's bytes standing in for its path."""
    resolved = spec.model_dump(mode="json", exclude={"providers_file"})
    if resolved.get("cluster") is None:  # suites without it keep the versions they had
        resolved.pop("cluster", None)
    resolved["dataset"] = {**resolved["dataset"], "path": None, "sha256": dataset_sha256}
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:VERSION_LENGTH]
