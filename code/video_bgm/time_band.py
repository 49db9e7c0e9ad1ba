"""Time-local conditioning: which conditioning tokens each audio position of the decoder may see.

MusicGen's cross-attention was trained on text, which has no time: every decoder position attends
to every token, so a video's tokens reach it as a summary of the window. With ``attention_band``
B > 0 (model config) the video tokens are one per frame, frame j covering [t_j, t_j + 1/fps) of
the window, and the decoder position that predicts audio time a attends only to

- the frames whose interval lies within B seconds of a (distance 0 inside the interval),
- always the frame nearest to a, so that no position is left with nothing to attend to (music
  past the video's last frame follows its last frame),
- every *global* token (no time: a text prompt's or a caption's tokens), as MusicGen would.

The same mask is used in training (teacher forcing) and in generation (step by step), through the
decoder's ``encoder_attention_mask`` as a 4-D additive mask; padded tokens and MusicGen's null
condition (a mask of zeros) stay masked exactly as transformers masks them in the 2-D case.
Decoder position p predicts code frame p (its first codebook; the delay pattern puts codebook k's
code of that frame k positions later, a few hundredths of a second), so p stands for time p / frame_rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TimeBand:
    """Token times for one conditioning sequence and the band around each audio position.

    ``starts``: [N] float, the start (s) of each token's frame, measured from the time of decoder
    position 0; NaN marks a global token. ``frame_seconds``: how long a frame stands (1 / fps).
    ``seconds``: the band's half-width B.
    """

    starts: torch.Tensor
    frame_seconds: float
    seconds: float

    @classmethod
    def for_frames(cls, frame_starts, num_tokens: int, frame_seconds: float, seconds: float) -> "TimeBand":
        """Tokens whose first ``len(frame_starts)`` are the frames at ``frame_starts`` (s); the
        rest of the ``num_tokens`` (text tokens that follow the video's) are global."""
        starts = torch.full((num_tokens,), math.nan, dtype=torch.float64)
        frame_starts = torch.as_tensor(frame_starts, dtype=torch.float64).flatten()
        if len(frame_starts) > num_tokens:
            raise ValueError(f"{len(frame_starts)} frame times for {num_tokens} tokens")
        starts[: len(frame_starts)] = frame_starts
        return cls(starts, float(frame_seconds), float(seconds))

    def shifted(self, seconds: float) -> "TimeBand":
        """The same band with every token time moved by ``seconds`` (a new time origin)."""
        return TimeBand(self.starts + seconds, self.frame_seconds, self.seconds)

    def with_tokens(self, num_tokens: int) -> "TimeBand":
        """The same band for a sequence with global tokens appended up to ``num_tokens``."""
        extra = num_tokens - len(self.starts)
        if extra < 0:
            raise ValueError(f"a band of {len(self.starts)} tokens cannot cover {num_tokens}")
        return TimeBand(torch.cat([self.starts, torch.full((extra,), math.nan, dtype=torch.float64)]),
                        self.frame_seconds, self.seconds)

    def allowed(self, token_mask: torch.Tensor, positions: torch.Tensor, frame_rate: float) -> torch.Tensor:
        """Bool [B, L, N]: which tokens (of ``token_mask`` [B, N], True = real) decoder positions
        ``positions`` [L] may attend to (see the module docstring)."""
        B, N = token_mask.shape
        if N != len(self.starts):
            raise ValueError(f"the band has {len(self.starts)} token times, the conditioning {N} tokens")
        device = token_mask.device
        starts = self.starts.to(device)
        timed = ~torch.isnan(starts)  # (N,)
        audio = positions.to(device=device, dtype=torch.float64)[:, None] / frame_rate  # (L, 1)
        lo = torch.where(timed, starts, 0.0)[None, :]
        distance = (lo - audio).clamp(min=0) + (audio - (lo + self.frame_seconds)).clamp(min=0)  # (L, N)
        near = (distance <= self.seconds + 1e-9) & timed
        real = token_mask.bool()
        candidates = real & timed  # (B, N)
        # The nearest real frame of each row, for every position (rows with no frame: none).
        ranked = distance[None].expand(B, -1, -1).masked_fill(~candidates[:, None, :], math.inf)  # (B, L, N)
        nearest = torch.zeros_like(ranked, dtype=torch.bool).scatter_(2, ranked.argmin(-1, keepdim=True), True)
        nearest &= candidates[:, None, :]
        return (near[None] | nearest | ~timed[None, None, :]) & real[:, None, :]

    def attention_mask(self, token_mask: torch.Tensor, positions: torch.Tensor, frame_rate: float,
                       dtype: torch.dtype) -> torch.Tensor:
        """``allowed`` as the decoder's additive cross-attention mask [B, 1, L, N]: 0 where a token
        is seen, the dtype's minimum where not (transformers' own value for a masked key)."""
        allowed = self.allowed(token_mask, positions, frame_rate)
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
            ~allowed, torch.finfo(dtype).min)[:, None]
