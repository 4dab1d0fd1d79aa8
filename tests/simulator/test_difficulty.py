"""Shared per-item difficulty (simulator/difficulty.py): accuracy and correlation as chosen,
clusters sharing difficulty, and the old behaviour kept by default."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from pydantic import ValidationError
from scipy.stats import multivariate_normal, norm

from evalcluster.simulator import SimulatorConfig, SimulatorThread
from evalcluster.simulator.difficulty import (
    Difficulty,
    cluster_key,
    latent_correlation,
    phi_correlation,
)
from evalcluster.simulator.model import reply
from evalcluster.simulator.reference import REFERENCE_HEADER, encode_reference

ITEMS = 4000


def correctness(model: str, accuracy: float, difficulty: Difficulty, prompts: list[str]):
    return np.array(
        [
            reply(p, model=model, accuracy=accuracy, reference="ref", difficulty=difficulty).correct
            for p in prompts
        ],
        dtype=float,
    )


def test_phi_matches_scipys_bivariate_normal():
    for latent, a, b in [(0.5, 0.72, 0.70), (0.9, 0.6, 0.8), (0.2, 0.3, 0.5)]:
        za, zb = norm.ppf(a), norm.ppf(b)
        both = multivariate_normal(mean=[0, 0], cov=[[1, latent], [latent, 1]]).cdf([za, zb])
        expected = (both - a * b) / np.sqrt(a * (1 - a) * b * (1 - b))
        assert phi_correlation(latent, a, b) == pytest.approx(expected, abs=1e-6)


def test_latent_correlation_inverts_phi():
    latent = latent_correlation(0.7, 0.72, 0.70)
    assert phi_correlation(latent, 0.72, 0.70) == pytest.approx(0.7, abs=1e-9)
    with pytest.raises(ValueError, match="out of reach"):
        latent_correlation(0.99, 0.9, 0.3)


def test_two_models_have_the_chosen_accuracies_and_correlation():
    prompts = [f"Question {i}: which word?" for i in range(ITEMS)]
    shared = Difficulty(latent_correlation(0.7, 0.72, 0.70))
    a = correctness("sim-a", 0.72, shared, prompts)
    b = correctness("sim-b", 0.70, shared, prompts)
    # binomial standard error at 4,000 items is about 0.007: 3.5 of them
    assert a.mean() == pytest.approx(0.72, abs=0.025)
    assert b.mean() == pytest.approx(0.70, abs=0.025)
    assert np.corrcoef(a, b)[0, 1] == pytest.approx(0.7, abs=0.05)


def test_without_shared_difficulty_models_are_independent_and_unchanged():
    prompts = [f"Question {i}: which word?" for i in range(ITEMS)]
    plain_a = correctness("sim-a", 0.72, None, prompts)
    zero_a = correctness("sim-a", 0.72, Difficulty(0.0), prompts)
    assert np.array_equal(plain_a, zero_a)  # correlation 0 is the old rule, draw for draw
    b = correctness("sim-b", 0.70, None, prompts)
    assert abs(np.corrcoef(plain_a, b)[0, 1]) < 0.05


def test_items_of_a_cluster_share_difficulty():
    clusters, per = 200, 20
    prompts = [f"[passage {c}] question {q}" for c in range(clusters) for q in range(per)]
    pattern = r"\[passage (\d+)\]"
    clustered = Difficulty(0.8, cluster_correlation=0.8, cluster_pattern=pattern)
    unclustered = Difficulty(0.8)
    means = {}
    for name, difficulty in (("clustered", clustered), ("plain", unclustered)):
        right = correctness("sim-a", 0.7, difficulty, prompts).reshape(clusters, per)
        assert right.mean() == pytest.approx(0.7, abs=0.04)
        means[name] = right.mean(axis=1).var()
    # intra-cluster latent correlation 0.64 inflates the variance of cluster means many times
    assert means["clustered"] > 4 * means["plain"]


def test_cluster_key_takes_the_first_group_or_the_match():
    assert cluster_key("[passage 12] why?", r"\[passage (\d+)\]") == "12"
    assert cluster_key("doc-7: why?", r"doc-\d+") == "doc-7"
    assert cluster_key("no cluster here", r"doc-\d+") is None
    assert cluster_key("doc-7", None) is None


def test_config_validates_the_settings():
    with pytest.raises(ValidationError, match="regular expression"):
        SimulatorConfig(correlation=0.5, cluster_pattern="([unclosed")
    with pytest.raises(ValidationError, match="correlation"):
        SimulatorConfig(correlation=1.0)
    config = SimulatorConfig(correlation=0.5, cluster_pattern="x(\\d)", cluster_correlation=0.3)
    assert config.difficulty() == Difficulty(0.5, 0.3, "x(\\d)")


def test_the_server_answers_with_shared_difficulty():
    latent = latent_correlation(0.7, 0.72, 0.70)
    config = SimulatorConfig(accuracy=0.72, correlation=latent)
    prompts = [f"Question {i}: which word?" for i in range(60)]
    with SimulatorThread(config) as sim, httpx.Client(base_url=sim.url) as client:
        for prompt in prompts:
            response = client.post(
                "/v1/chat/completions",
                json={"model": "sim-a", "messages": [{"role": "user", "content": prompt}]},
                headers={REFERENCE_HEADER: encode_reference("ref"), "authorization": "Bearer k"},
            )
            text = response.json()["choices"][0]["message"]["content"]
            expected = reply(
                prompt, model="sim-a", accuracy=0.72, reference="ref", difficulty=Difficulty(latent)
            )
            assert text == expected.text


def test_simulate_command_takes_the_difficulty_flags(capsys):
    from evalcluster.simulator.cli import build_parser, config_from_args, main

    args = build_parser().parse_args(
        ["--correlation", "0.6", "--cluster-pattern", r"doc-(\d+)", "--cluster-correlation", "0.4"]
    )
    assert config_from_args(args, {}).difficulty() == Difficulty(0.6, 0.4, r"doc-(\d+)")
    assert main(["--correlation", "1.2"]) == 2
    assert "correlation" in capsys.readouterr().err
