"""Do the levers put beats on the cuts? Rendered real music (music21 corpus scores through fluidsynth)
under planted cuts: the "cuts on a beat" rate (50 ms) and LORIS's BHS with the cuts as the reference
beats (one-second bins), for the music as it is, reranked among K candidates, and nudged.

    python bench/cuts.py [--clips 12] [--seconds 20]

A candidate is an excerpt of a rendered piece starting at a random time (what K samples of one
window differ by: where their beats fall); the rerank keeps the best of K per cut, as generation does.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from video_bgm import beats, cutsync, synthetic

SR = 32000
PIECES = [("bach/bwv66.6", 100), ("ryansMammoth/BanjoReel", 110), ("bach/bwv66.6", 84), ("ryansMammoth/BanjoReel", 126)]


def rates(music, cuts, seconds):
    found = beats.detect_beats(music, SR)
    bins = np.zeros(int(np.ceil(seconds)), dtype=int)
    bins[np.trunc(cuts).astype(int)] = 1
    _, bhs = beats.loris_scores(bins, beats.loris_beats(music, SR))
    return np.sum(beats.cut_offsets(cuts, found) <= beats.ON_BEAT_TOLERANCE + 1e-9), bhs


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--clips", type=int, default=12)
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        rendered = [synthetic.render_score(n, b, SR, tmp) for n, b in PIECES]
    rendered = [np.tile(r, 3) for r in rendered]  # long enough for any excerpt
    n = round(args.seconds * SR)
    totals = {}
    spent = {}

    def excerpt():
        r = rendered[rng.integers(len(rendered))]
        a = rng.integers(0, len(r) - n)
        return r[a : a + n]

    def add(name, music, cuts, seconds_spent=0.0):
        hits, bhs = rates(music, cuts, args.seconds)
        t = totals.setdefault(name, [0, 0, []])
        t[0] += hits
        t[1] += len(cuts)
        t[2].append(bhs)
        spent[name] = spent.get(name, 0.0) + seconds_spent

    for _ in range(args.clips):
        cuts = np.sort(rng.uniform(2.0, args.seconds - 2.0, size=3)).round(3)
        base = excerpt()
        add("as made", base, cuts)
        for k in (4, 8):
            # per cut: the stretch from halfway since the last cut to halfway to the next comes from
            # the best of k candidates (k - 1 new excerpts plus the base)
            t0 = time.perf_counter()
            music = base.copy()
            edges = [0] + [round((a + b) / 2 * SR) for a, b in zip(cuts, cuts[1:])] + [n]
            for cut, lo, hi in zip(cuts, edges, edges[1:]):
                candidates = np.stack([base] + [excerpt() for _ in range(k - 1)])
                a, b = max(0, round((cut - cutsync.SCORE_CONTEXT) * SR)), min(n, round((cut + cutsync.SCORE_CONTEXT) * SR))
                kept, _ = cutsync.choose(candidates[:, a:b], SR, a / SR, [cut])
                music[lo:hi] = candidates[kept, lo:hi]
            add(f"rerank K={k}", music, cuts, time.perf_counter() - t0)
        for stretcher in cutsync.STRETCHERS:
            for pct in (2, 5):
                t0 = time.perf_counter()
                nudged, _ = cutsync.nudge(base, SR, cuts, pct / 100, stretcher=stretcher)
                add(f"nudge {pct}% ({stretcher})", nudged, cuts, time.perf_counter() - t0)
    music_minutes = args.clips * args.seconds / 60
    print(f"{args.clips} clips x {args.seconds:g} s, 3 planted cuts each")
    print("| lever | cuts on a beat (50 ms) | BHS vs cuts | seconds per minute of music |")
    print("| --- | --- | --- | --- |")
    for name, (hits, count, bhs) in totals.items():
        print(f"| {name} | {hits / count:.2f} ({hits}/{count}) | {np.mean(bhs):.2f} | {spent[name] / music_minutes:.1f} |")


if __name__ == "__main__":
    main()
