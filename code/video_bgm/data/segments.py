"""Fixed-length training segments cut from cached clips, deterministic per (seed, epoch, index).

Every item depends only on (seed, epoch, position), never on a running random state, so an
interrupted run that resumes at the same position sees exactly the same batches.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import CachedClip, load_cached


class SegmentDataset(Dataset):
    """Segments of ``seconds``: features [Tf, F] + mask, codes [K, Tc] + mask, and the caption.

    Training (``random_crops``): the clip order is a seeded permutation per epoch, and clips
    longer than a segment give a random crop (aligned to the frame grid). Evaluation: every
    clip's first segment, in order. Shorter clips are zero-padded; their masks say so.
    """

    def __init__(self, clips: list[CachedClip], seconds: float, fps: float, frame_rate: float,
                 seed: int = 0, random_crops: bool = False):
        self.items = [load_cached(c) for c in clips]  # small: fp16 features and int16 codes per clip
        self.captions = [c.clip.caption for c in clips]
        self.ids = [c.clip.id for c in clips]
        self.fps, self.frame_rate, self.seed, self.random_crops = fps, frame_rate, seed, random_crops
        self.num_frames = max(1, math.ceil(seconds * fps))
        self.num_codes = round(self.num_frames / fps * frame_rate)  # the same span as the frames
        self.set_epoch(0)

    def set_epoch(self, epoch: int, skip: int = 0, rank: int = 0, world: int = 1) -> None:
        """Order the clips for ``epoch``, leaving out its first ``skip`` (already trained on).

        With several processes, process ``rank`` takes every ``world``-th place, and the places
        wrap around so that every process gets as many (DistributedSampler's rule); after k
        batches of b clips each, the processes together have seen exactly the first k*b*world.
        """
        self.epoch = epoch
        order = list(range(len(self.items)))
        if self.random_crops:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.items)).tolist()
        positions = list(range(skip, len(order)))
        if world > 1 and positions:
            per_process = math.ceil(len(positions) / world)
            positions = (positions * world)[: per_process * world][rank::world]
        self.positions = positions
        self.order = order

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> dict:
        position = self.positions[i]  # the place in the epoch's order: what the crop depends on
        index = self.order[position]
        features, codes = self.items[index]
        # Usable span: where both the video's frames and the music's codes exist.
        span_frames = min(len(features), math.floor(codes.shape[1] / self.frame_rate * self.fps))
        span_frames = max(span_frames, 1)
        start = 0
        if self.random_crops and span_frames > self.num_frames:
            rng = np.random.default_rng([self.seed, self.epoch, position])
            start = int(rng.integers(0, span_frames - self.num_frames + 1))
        frames = features[start:start + min(self.num_frames, span_frames)]
        code_start = round(start / self.fps * self.frame_rate)
        clip_codes = codes[:, code_start:code_start + self.num_codes]
        return {
            "features": _pad(frames, self.num_frames, dim=0),
            "features_mask": _mask(len(frames), self.num_frames),
            "codes": _pad(clip_codes, self.num_codes, dim=1),
            "codes_mask": _mask(clip_codes.shape[1], self.num_codes),
            "caption": self.captions[index] or "",
            "index": index,
        }


def _pad(x: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - x.shape[dim]
    if missing <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


def _mask(real: int, length: int) -> torch.Tensor:
    mask = torch.zeros(length, dtype=torch.bool)
    mask[:real] = True
    return mask
