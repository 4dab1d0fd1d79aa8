"""Per-item difficulty shared by simulated models: correlated correctness on demand.

Each model m answers item i right when its latent value falls below its accuracy's quantile:

    L_mi = sqrt(r) * S_i + sqrt(1 - r) * E_mi          right  <=>  L_mi < Phi^-1(accuracy_m)
    S_i  = sqrt(c) * K_k(i) + sqrt(1 - c) * U_i        (S_i = U_i when the item has no cluster)

with S_i the item's difficulty, shared by every model (a hash of the seed and the prompt),
K_k the difficulty of the item's cluster k (a hash of the seed and the cluster key),
U_i and E_mi independent standard normals (E_mi is the hash of (seed, model, prompt) that the
simulator has always drawn, seen through the normal quantile), r = `correlation` and
c = `cluster_correlation`. So P(right) = accuracy_m exactly, for any r and c, and:

- r is the latent (tetrachoric) correlation of two models on the same item: a Gaussian copula.
  The correlation of their 0/1 correctness (phi) is smaller and depends on both accuracies:
  `phi_correlation` computes it, `latent_correlation` inverts it (e.g. phi 0.7 at accuracies
  0.72 and 0.70 needs r ~ 0.90);
- two items of one cluster have latent correlation r * c for one model (their shared
  difficulty), so clustered items' scores are correlated as questions on one passage are.

With r = 0 (the default) L_mi = E_mi and the rule is the simulator's old one, draw for draw.
Two models must differ in model name (or seed) for their E to differ: the same (seed, model)
on two simulators answers identically.
"""

from __future__ import annotations

import hashlib
import math
import re
from functools import lru_cache
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

_NORMAL = NormalDist()
_QUADRATURE_POINTS = 96


class Difficulty(NamedTuple):
    """The shared-difficulty settings of one simulator (hashable: replies are cached)."""

    correlation: float = 0.0
    cluster_correlation: float = 0.0
    cluster_pattern: str | None = None

    @property
    def shared(self) -> bool:
        return self.correlation > 0.0


def normal_from_uniform(uniform: float) -> float:
    """The standard normal quantile of a uniform in [0, 1), kept off the endpoints."""
    return _NORMAL.inv_cdf(min(max(uniform, 2.0**-64), 1.0 - 2.0**-53))


def is_right(
    *, seed: int, prompt: str, accuracy: float, noise_uniform: float, difficulty: Difficulty
) -> bool:
    """Whether a model whose own draw is `noise_uniform` answers `prompt` right."""
    if accuracy >= 1.0:
        return True
    if accuracy <= 0.0:
        return False
    if not difficulty.shared:
        return noise_uniform < accuracy
    r = difficulty.correlation
    noise = normal_from_uniform(noise_uniform)
    latent = math.sqrt(r) * item_difficulty(seed, prompt, difficulty) + math.sqrt(1 - r) * noise
    return latent < _NORMAL.inv_cdf(accuracy)


def item_difficulty(seed: int, prompt: str, difficulty: Difficulty) -> float:
    """S_i: the item's standard normal difficulty, its cluster's share included."""
    own = _hashed_normal(seed, "item", prompt)
    key = cluster_key(prompt, difficulty.cluster_pattern)
    c = difficulty.cluster_correlation
    if key is None or c <= 0.0:
        return own
    return math.sqrt(c) * _hashed_normal(seed, "cluster", key) + math.sqrt(1 - c) * own


def cluster_key(prompt: str, pattern: str | None) -> str | None:
    """The item's cluster: the first group of `pattern`'s first match in the prompt (or the
    whole match when the pattern has no group); None without a pattern or a match."""
    if pattern is None:
        return None
    match = _compiled(pattern).search(prompt)
    if match is None:
        return None
    return match.group(1) if match.re.groups else match.group(0)


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _hashed_normal(seed: int, kind: str, key: str) -> float:
    material = f"{seed}\x1f{kind}\x1e\x1f{key}".encode()
    digest = hashlib.blake2b(material, digest_size=8).digest()
    return normal_from_uniform((int.from_bytes(digest, "big") + 0.5) / 2**64)


def phi_correlation(latent: float, accuracy_a: float, accuracy_b: float) -> float:
    """The correlation of two models' 0/1 correctness on one item, given their latent
    correlation and accuracies (Gauss-Hermite quadrature over the shared difficulty)."""
    if not (0.0 < accuracy_a < 1.0 and 0.0 < accuracy_b < 1.0):
        raise ValueError("phi is defined for accuracies strictly between 0 and 1")
    if not 0.0 <= latent <= 1.0:
        raise ValueError("the latent correlation must be in [0, 1]")
    both = _both_right(latent, accuracy_a, accuracy_b)
    spread = math.sqrt(accuracy_a * (1 - accuracy_a) * accuracy_b * (1 - accuracy_b))
    return (both - accuracy_a * accuracy_b) / spread


def latent_correlation(phi: float, accuracy_a: float, accuracy_b: float) -> float:
    """The latent correlation r giving correctness correlation `phi` (bisection); raises
    ValueError when no r in [0, 1] reaches it (phi is capped by the accuracies' gap)."""
    highest = phi_correlation(1.0, accuracy_a, accuracy_b)
    if not 0.0 <= phi <= highest + 1e-12:
        raise ValueError(
            f"phi {phi} is out of reach at accuracies {accuracy_a} and {accuracy_b} "
            f"(at most {highest:.4f})"
        )
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        if phi_correlation(middle, accuracy_a, accuracy_b) < phi:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _both_right(latent: float, accuracy_a: float, accuracy_b: float) -> float:
    """P(L_a < z_a and L_b < z_b) for latent correlation `latent`."""
    za, zb = _NORMAL.inv_cdf(accuracy_a), _NORMAL.inv_cdf(accuracy_b)
    if latent >= 1.0:
        return min(accuracy_a, accuracy_b)
    nodes, weights = np.polynomial.hermite_e.hermegauss(_QUADRATURE_POINTS)
    scale = math.sqrt(1.0 - latent)
    shift = math.sqrt(latent) * nodes
    cdf = np.vectorize(_NORMAL.cdf)
    total = (weights * cdf((za - shift) / scale) * cdf((zb - shift) / scale)).sum()
    return float(total / math.sqrt(2.0 * math.pi))
