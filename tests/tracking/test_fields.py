"""Names and filtering of MLflow params and metrics."""

from __future__ import annotations

import math

import pytest

from evalcluster.tracking.fields import (
    MAX_PARAM_VALUE,
    experiment_name,
    finite_metrics,
    flatten_params,
    looks_secret,
    parent_metrics,
)


def test_experiment_is_named_after_the_suite():
    assert experiment_name("arithmetic") == "evalcluster/arithmetic"


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "apiKey",
        "X-Api-Key",
        "access_token",
        "authorization",
        "client_secret",
        "password",
        "aws_secret_access_key",
        "bearer",
        "AuthToken",
    ],
)
def test_credential_like_names_look_secret(name: str):
    assert looks_secret(name)


@pytest.mark.parametrize(
    "name", ["max_tokens", "temperature", "top_k", "monkey", "keyword_bias", "stop", "seed"]
)
def test_ordinary_generation_params_do_not_look_secret(name: str):
    assert not looks_secret(name)


def test_flatten_params_prefixes_dots_nested_values_and_drops_secrets_and_nones():
    params = {
        "temperature": 0,
        "max_tokens": 16,
        "stop": ["\n", "Q:"],
        "api_key": "sk-live-123",
        "top_p": None,
        "extra_body": {"reasoning": {"effort": "low"}, "headers": {"Authorization": "Bearer x"}},
    }
    assert flatten_params(params, prefix="params.") == {
        "params.temperature": "0",
        "params.max_tokens": "16",
        "params.stop": '["\\n", "Q:"]',
        "params.extra_body.reasoning.effort": "low",
    }


def test_flatten_params_cuts_values_to_mlflow_limit():
    flat = flatten_params({"system_hint": "x" * (MAX_PARAM_VALUE + 50)})
    assert len(flat["system_hint"]) == MAX_PARAM_VALUE
    assert flat["system_hint"].endswith("...")


def test_finite_metrics_drops_none_nan_inf_and_bools():
    metrics = {"a/mean": 0.5, "b/mean": None, "c": math.nan, "d": math.inf, "e": True, "n": 3}
    assert finite_metrics(metrics) == {"a/mean": 0.5, "n": 3.0}


def test_parent_metrics_copy_each_target_and_sum_the_totals():
    out = parent_metrics(
        [
            ("a", {"exact/mean": 1.0, "cost_usd": 0.25, "errors": 1.0, "tokens/input": 10.0}),
            ("b", {"exact/mean": 0.5, "cost_usd": 0.5, "errors": 0.0, "latency_ms/p50": 9.0}),
        ]
    )
    assert out == {
        "a/exact/mean": 1.0,
        "a/cost_usd": 0.25,
        "a/errors": 1.0,
        "a/tokens/input": 10.0,
        "b/exact/mean": 0.5,
        "b/cost_usd": 0.5,
        "b/errors": 0.0,
        "b/latency_ms/p50": 9.0,
        "cost_usd": 0.75,
        "errors": 1.0,
        "tokens/input": 10.0,
    }
