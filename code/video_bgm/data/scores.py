"""Per-clip filter scores: how loud the music is, how much of the sound is voice, how still and how
dark the picture is, and a perceptual hash of its frames for near-duplicates across sources.

Every score is a plain number recorded in the manifest, so a threshold can be changed later and the
clips re-filtered without decoding anything again.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.fft import dctn

from ..loudness import integrated_loudness

_THUMB = 32          # frames are reduced to 32x32 grey for the picture scores and the hash
_HASH = 8            # pHash: the 8x8 lowest DCT frequencies of the 32x32 thumbnail -> 64 bits
BLACK_LEVEL = 16 / 255  # video's "black" (limited-range luma 16); darker frames count as black
BLANK_STD = 2 / 255     # a frame this uniform (any colour) is blank: a title card, a missing feed


def music_loudness(music: np.ndarray, sample_rate: int) -> float:
    """BS.1770 integrated loudness (LUFS) of the music stem; -inf for silence."""
    return float(integrated_loudness(music, sample_rate))


def vocal_share(music: np.ndarray, vocals: np.ndarray) -> float:
    """The vocals stem's share of the soundtrack's energy, in [0, 1] (0 for silence)."""
    voice, rest = float(np.square(vocals, dtype=np.float64).sum()), float(np.square(music, dtype=np.float64).sum())
    return voice / (voice + rest) if voice + rest > 0 else 0.0


def thumbnails(frames: torch.Tensor) -> np.ndarray:
    """uint8 RGB [T, H, W, 3] -> float32 grey [T, 32, 32] in [0, 1] (area average, so noise averages out)."""
    grey = frames.float().mul_(1 / 255).matmul(torch.tensor([0.299, 0.587, 0.114]))  # [T, H, W]
    small = torch.nn.functional.adaptive_avg_pool2d(grey[:, None], (_THUMB, _THUMB))[:, 0]
    return small.numpy().astype(np.float32)


def picture_scores(thumbs: np.ndarray) -> dict:
    """motion: mean absolute grey difference between successive sampled frames (0: a still picture);
    black_share / blank_share: the share of sampled frames that are black / uniform."""
    motion = float(np.abs(np.diff(thumbs, axis=0)).mean()) if len(thumbs) > 1 else 0.0
    return {"motion": motion,
            "black_share": float((thumbs.mean(axis=(1, 2)) < BLACK_LEVEL).mean()) if len(thumbs) else 1.0,
            "blank_share": float((thumbs.std(axis=(1, 2)) < BLANK_STD).mean()) if len(thumbs) else 1.0}


def frame_hashes(thumbs: np.ndarray) -> list[int]:
    """64-bit perceptual hashes (pHash: signs of the low DCT frequencies against their median) of the
    frames that have a picture; blank frames hash alike whatever they show, so they get none."""
    hashes = []
    for thumb in thumbs:
        if thumb.std() < BLANK_STD:
            continue
        low = dctn(thumb.astype(np.float64), norm="ortho")[:_HASH, :_HASH].ravel()
        bits = low[1:] > np.median(low[1:])  # the DC term only says how bright the frame is
        hashes.append(int(np.packbits(np.concatenate([[False], bits])).view(">u8")[0]))
    return hashes


def duplicate_scores(clips: list[tuple[str, str, list[int]]], max_distance: int = 8) -> dict[str, tuple[float, str | None]]:
    """Near-duplicates across sources: for each clip (id, source, frame hashes), in the given order,
    the share of its hashed frames within ``max_distance`` bits of a frame of an EARLIER clip of
    another source, and the clip that has most of them. The first copy is never the duplicate.

    Candidates come from ``max_distance`` + 1 bands that split the hash's 63 bits (its top bit is
    always 0): two hashes within ``max_distance`` bits share at least one band exactly (pigeonhole),
    while a random pair shares one of the 9 bands of 7 bits (the default) with probability about
    9/128, so only a small share of the earlier frames is compared, and no near pair is missed.
    """
    edges = np.linspace(0, 63, min(max_distance + 1, 63) + 1).round().astype(int).tolist()
    spans = [(lo, (1 << (hi - lo)) - 1) for lo, hi in zip(edges, edges[1:])]  # (shift, mask) per band

    def keys(h: int):
        if max_distance >= 63:  # every pair is near: one band holds them all
            return [(0, 0)]
        return [(band, (h >> shift) & mask) for band, (shift, mask) in enumerate(spans)]

    bands: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (band, bits) -> [(clip index, hash)]
    out = {}
    for index, (clip_id, source, hashes) in enumerate(clips):
        matched, votes = 0, {}
        for h in hashes:
            best = None
            near = {c for k in keys(h) for c in bands.get(k, ())}
            for candidate, other in near:
                if clips[candidate][1] != source and bin(h ^ other).count("1") <= max_distance:
                    best = candidate if best is None else min(best, candidate)
            if best is not None:
                matched += 1
                votes[best] = votes.get(best, 0) + 1
        of = clips[max(votes, key=lambda c: (votes[c], -c))][0] if votes else None
        out[clip_id] = (matched / len(hashes) if hashes else 0.0, of)
        for h in hashes:
            for k in keys(h):
                bands.setdefault(k, []).append((index, h))
    return out
