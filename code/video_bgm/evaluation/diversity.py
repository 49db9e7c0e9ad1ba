"""Diversity: how different the pieces are, across videos and across takes of one video.

Each piece is summarised by the mean of its embedding vectors (CLAP windows or EnCodec frames);
the distance between two pieces is the Euclidean distance of those means. It ignores an offset
shared by all pieces (EnCodec latents have a large one, which would make cosine distances all
near 0), and its scale is the embedding model's: compare diversities only within one embedding
model (across systems, and against the reference music's own diversity).

- across videos: mean distance over all pairs of pieces made for different videos (one take
  each). Near 0 means the same music whatever the video (mode collapse).
- across takes: for every video with at least two takes, the mean distance over pairs of its
  takes; then the mean over videos. Near 0 means the sampler always makes the same piece.
"""

from __future__ import annotations

import numpy as np


def piece_vector(embeddings: np.ndarray) -> np.ndarray:
    """One vector [D] per piece: the mean of its embeddings [n, D]."""
    return np.asarray(embeddings, dtype=np.float64).reshape(-1, np.shape(embeddings)[-1]).mean(axis=0)


def distances(vectors: np.ndarray) -> np.ndarray:
    """Pairwise Euclidean distances [N, N] of vectors [N, D]."""
    x = np.asarray(vectors, dtype=np.float64)
    return np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)


def mean_pairwise_distance(vectors: np.ndarray) -> float | None:
    """Mean distance over the N (N - 1) / 2 distinct pairs; None for fewer than 2 vectors."""
    if len(vectors) < 2:
        return None
    d = distances(vectors)
    return float(d[np.triu_indices(len(d), k=1)].mean())


def across_takes(takes_per_video: list[np.ndarray]) -> float | None:
    """Mean over videos (with >= 2 takes) of the mean pairwise distance of their takes [n_takes, D]."""
    values = [mean_pairwise_distance(t) for t in takes_per_video if len(t) >= 2]
    return float(np.mean(values)) if values else None
