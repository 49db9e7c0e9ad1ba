"""Precision, recall, density and coverage of generated music against the reference music
(Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative Models", ICML 2020), as their
reference code (github.com/clovaai/generative-evaluation-prdc, the ``prdc`` package) computes them.

Each sample is one piece (the mean of its embedding vectors, as diversity uses), so the numbers are
per piece, not per window. Around every reference piece is a ball reaching its k-th nearest
reference neighbour (Euclidean; k = 5 as the paper recommends):

- precision: the share of generated pieces inside at least one reference ball;
- recall: the share of reference pieces inside at least one generated piece's ball (the same
  construction on the generated set);
- density: the mean over generated pieces of how many reference balls hold them, divided by k
  (1 on average for pieces from the reference distribution; above 1 where they crowd its dense parts);
- coverage: the share of reference pieces whose ball holds at least one generated piece.

Density and coverage are the two the paper proposes (robust to outliers, with known expectations);
precision and recall are Kynkäänniemi et al.'s (2019), computed the same way.
"""

from __future__ import annotations

import numpy as np

NEAREST_K = 5


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(a), len(b)], in float64."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def _radii(x: np.ndarray, k: int) -> np.ndarray:
    """Each sample's distance to its k-th nearest neighbour in ``x`` (itself, at 0, not counted)."""
    d = _distances(x, x)
    np.fill_diagonal(d, 0.0)
    return np.partition(d, k, axis=1)[:, k]


def prdc(reference: np.ndarray, generated: np.ndarray, k: int = NEAREST_K) -> dict | None:
    """Precision, recall, density and coverage of ``generated`` [M, D] against ``reference`` [N, D];
    None when either set has no more than k samples (no k-th neighbour)."""
    real, fake = np.asarray(reference, dtype=np.float64), np.asarray(generated, dtype=np.float64)
    if len(real) <= k or len(fake) <= k:
        return None
    real_radii, fake_radii = _radii(real, k), _radii(fake, k)
    d = _distances(real, fake)  # [N, M]
    inside_real = d < real_radii[:, None]
    return {"precision": float(inside_real.any(axis=0).mean()),
            "recall": float((d < fake_radii[None, :]).any(axis=1).mean()),
            "density": float(inside_real.sum(axis=0).mean() / k),
            "coverage": float((d.min(axis=1) < real_radii).mean()),
            "k": k}
