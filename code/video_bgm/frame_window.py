"""Which frames of a clip the temporal transformer sees (``num_frames``, ``short_clips`` in the config).

``num_frames = 0`` (our own models): one frame every 1/fps s of the clip, however many.

``num_frames = N`` keeps a model in the regime it was trained in. The thesis's models saw exactly
30 frames at t = 0, 1, ..., 29 s, never masked, for 30 s of music, so:
- a clip of N / fps seconds: N frames at i / fps, exactly as in training;
- a shorter clip, ``"hold_last"`` (the default): its frames at i / fps, then its last frame repeated
  up to N. Every token keeps the time it was trained for (token i = second i), and the encoder's
  self-attention and the decoder's cross-attention see N tokens, as always in training; the music
  is the beginning of the music for a video whose picture stands still after the clip ends.
  ``"mask"``: only the clip's frames, the rest masked out; the real tokens keep their times, but
  self- and cross-attention then see fewer keys than the model ever did.
- a longer clip: N frames spread evenly over it (t_i = i * seconds / N). The N positions stay as
  trained, but each token then stands for seconds / N s instead of 1 / fps. The pipeline makes at
  most 30 s of music per clip and samples frames over the music's span, so at the thesis's 1 fps this
  happens only to windows longer than N / fps; windowed generation should give each window of at
  most N / fps seconds its own N frames.
"""

from __future__ import annotations

import torch

from .config import VideoModelConfig


def sampling_rate(config: VideoModelConfig, seconds: float) -> float:
    """Frames per second to sample a clip of ``seconds`` at (more than ``fps`` only for a long clip)."""
    if config.num_frames and seconds * config.fps > config.num_frames:
        return config.num_frames / seconds
    return config.fps


def fit(features: torch.Tensor, config: VideoModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame features [T, F] sampled at ``sampling_rate`` -> the transformer's input [P, F] and mask [P].

    P = T without ``num_frames``; otherwise P = ``num_frames`` (see the module docstring).
    """
    T = features.shape[0]
    N = config.num_frames
    ones = torch.ones(T, dtype=torch.bool, device=features.device)
    if not N:
        return features, ones
    if T == 0:
        raise ValueError("no frames to encode")
    if T >= N:  # a spread-out long clip: rounding can add a frame at its very end
        return features[:N], ones[:N]
    if config.short_clips == "hold_last":
        return torch.cat([features, features[-1:].expand(N - T, -1)]), torch.ones(N, dtype=torch.bool, device=features.device)
    padding = features.new_zeros(N - T, features.shape[1])
    return torch.cat([features, padding]), torch.cat([ones, ones.new_zeros(N - T)])
