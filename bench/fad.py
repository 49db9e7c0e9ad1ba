#!/usr/bin/env python
"""Benchmark: the Fréchet distance's matrix square root, as the reference implementations take it
(``scipy.linalg.sqrtm(S1 @ S2)``, with their eps on both diagonals when the product is singular)
and as evaluation/fad.py takes it (the eigenvalues of S1^1/2 S2 S1^1/2).

    python bench/fad.py                        # PANNs' 2048 dimensions, 100 pieces a set; CLAP's 512; VGGish's 128
    python bench/fad.py --pieces 300 --rounds 5

Prints, per dimension, the best time of each over rounds that alternate them, the ratio, and the
relative difference of the two distances (singular covariances where pieces < dimensions).
Absolute seconds drift on shared machines; the ratio is measured in one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
from scipy import linalg

from video_bgm.evaluation.fad import frechet_distance, gaussian_stats


def reference_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """pytorch-fid's / frechet_audio_distance's calculate_frechet_distance, restated."""
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pieces", type=int, default=100, help="embeddings per set (default 100)")
    parser.add_argument("--dims", type=int, nargs="+", default=[2048, 512, 128])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} cores; {args.pieces} pieces a set, best of {args.rounds} rounds")
    rng = np.random.default_rng(0)
    for dim in args.dims:
        mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
        a = rng.normal(size=(args.pieces, dim)) @ mixing
        b = rng.normal(size=(args.pieces, dim)) @ mixing * 1.1 + 0.05
        stats = (*gaussian_stats(a), *gaussian_stats(b))
        times, values = {"sqrtm": [], "eigenvalues": []}, {}
        for _ in range(args.rounds):
            for name, distance in (("sqrtm", reference_distance), ("eigenvalues", frechet_distance)):
                start = time.perf_counter()
                values[name] = distance(*stats)
                times[name].append(time.perf_counter() - start)
        best = {k: min(v) for k, v in times.items()}
        print(f"{dim:5d} dims: sqrtm {best['sqrtm']:.2f} s, eigenvalues {best['eigenvalues']:.2f} s, "
              f"ratio {best['sqrtm'] / best['eigenvalues']:.1f}x; relative difference "
              f"{abs(values['eigenvalues'] - values['sqrtm']) / values['sqrtm']:.1e}")


if __name__ == "__main__":
    main()
