"""A motion channel: how much the picture moves during each sampled frame's interval.

The frame encoder sees still frames at the model's fps (1 or 2 a second), which cannot show how
fast something moves. With ``motion`` in the model config, every frame the video decodes at its own
frame rate is also read as grey levels at a grid of ``WIDTH`` points across (the height keeping
the aspect ratio; the luma plane sampled, not scaled, so it costs little beside decoding), and the energy of the difference between
consecutive frames, e = mean((g_t - g_{t-1})^2) on [0, 1] grey levels, is pooled over each sampled
frame's interval (t_j, t_j + 1/fps]: its mean and its maximum there, as log1p(e / UNIT). Those
``CHANNELS`` numbers join the frame's features (``append``) before the temporal transformer.
Frame differences, not optical flow: no model to download, and the grey grids cost a small
fraction of decoding (bench/motion.py measures it). A mean over a grid of points of the squared
differences estimates the whole frame's mean; a scaled-down picture would smooth fine texture away.
"""

from __future__ import annotations

import numpy as np
import torch

CHANNELS = 2  # mean and max frame-difference energy per sampled frame
WIDTH = 64  # grid points across each grey frame (the height keeps the aspect ratio)
UNIT = 0.01  # energy that maps to log1p(1): a clearly moving picture


class MotionMeter:
    """Collects the frame differences of a decoded stream for the sampled frames at ``times`` (s)."""

    def __init__(self, times: np.ndarray, frame_seconds: float, width: int, height: int):
        self.times = np.asarray(times, dtype=np.float64)
        self.end = float(self.times[-1] + frame_seconds) if len(self.times) else float("-inf")
        self.size = (WIDTH, max(2, round(WIDTH * height / max(width, 1) / 2) * 2))  # (w, h), even
        self._sums = np.zeros(len(self.times))
        self._counts = np.zeros(len(self.times))
        self._peaks = np.zeros(len(self.times))
        self._previous: np.ndarray | None = None
        self.done = len(self.times) == 0

    def add(self, start: float, grey: np.ndarray) -> None:
        """The decoded frame starting at ``start`` (s, in order) as uint8 grey [h, w] at ``size``."""
        frame = grey.astype(np.float32) / 255.0
        previous, self._previous = self._previous, frame
        if start >= self.end - 1e-6:
            self.done = True
        if previous is None or start > self.end + 1e-6:
            return
        j = int(np.searchsorted(self.times, start - 1e-6, side="left")) - 1  # start in (t_j, t_j+1]
        if j < 0:  # a change that ended before the first sampled frame
            return
        energy = float(np.mean((frame - previous) ** 2))
        self._sums[j] += energy
        self._counts[j] += 1
        self._peaks[j] = max(self._peaks[j], energy)

    def channels(self) -> torch.Tensor:
        """float32 [T, CHANNELS]: per sampled frame, log1p(mean / UNIT) and log1p(max / UNIT);
        0 for an interval in which the picture did not change (or no new frame came)."""
        mean = np.divide(self._sums, self._counts, out=np.zeros_like(self._sums), where=self._counts > 0)
        return torch.from_numpy(np.log1p(np.stack([mean, self._peaks], axis=1) / UNIT).astype(np.float32))


def append(features: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """Frame features [T, F] with their motion channels [T, CHANNELS] appended: [T, F + CHANNELS]."""
    if len(features) != len(channels):
        raise ValueError(f"{len(features)} frames but motion for {len(channels)}")
    return torch.cat([features, channels.to(device=features.device, dtype=features.dtype)], dim=1)
