"""The `json` scorer: is the output valid JSON, and does it follow a JSON Schema?

Strict JSON (RFC 8259): ``NaN`` and ``Infinity``, which Python's parser would accept, are
invalid. With `extract_fenced` (the default) a fenced block is scored instead of the whole
output when there is one: the first ```` ```json ```` block, else the first plain ```` ``` ````
block, since models often wrap JSON in Markdown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError
from pydantic import Field, field_validator

from evalcluster.scoring.base import Score, ScorerOptions
from evalcluster.scoring.registry import register_scorer

_FENCED_JSON = re.compile(r"```[ \t]*json[ \t]*\r?\n(.*?)```", re.DOTALL | re.IGNORECASE)
_FENCED_ANY = re.compile(r"```[ \t]*\r?\n(.*?)```", re.DOTALL)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_strict_json(text: str) -> Any:
    """Parse RFC 8259 JSON; raises ValueError (json.JSONDecodeError included) otherwise."""
    return json.loads(text, parse_constant=_reject_constant)


def fenced_block(text: str) -> str | None:
    """The content of the first ```json fenced block, else of the first plain one."""
    match = _FENCED_JSON.search(text) or _FENCED_ANY.search(text)
    return match.group(1) if match else None


class JsonOptions(ScorerOptions):
    # "schema" would shadow a BaseModel attribute, hence the alias.
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    extract_fenced: bool = True

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                jsonschema.validators.validator_for(value).check_schema(value)
            except SchemaError as exc:
                raise ValueError(f"invalid JSON Schema: {exc.message}") from exc
        return value


@register_scorer("json", options=JsonOptions)
class JsonScorer:
    """1.0 for valid JSON that satisfies the schema (when one is given), else 0.0."""

    needs_judge = False

    def __init__(self, name: str, options: JsonOptions) -> None:
        self.name = name
        self.extract_fenced = options.extract_fenced
        self.validator = None
        if options.schema_ is not None:
            cls = jsonschema.validators.validator_for(options.schema_)
            self.validator = cls(options.schema_, format_checker=cls.FORMAT_CHECKER)

    def score(self, output: str, reference: str | None, sample: Mapping[str, Any]) -> Score:
        text = output
        if self.extract_fenced:
            text = fenced_block(output) or output
        try:
            value = parse_strict_json(text.strip())
        except ValueError as exc:
            return Score(0.0, f"invalid JSON: {exc}")
        if self.validator is None:
            return Score(1.0)
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(value))
        if error is None:
            return Score(1.0)
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return Score(0.0, f"schema violation at {where}: {error.message}")
