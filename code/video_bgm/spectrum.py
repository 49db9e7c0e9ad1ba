"""The one short-time spectrum behind every picture of music (the app's, the evaluation report's)."""

from __future__ import annotations

import numpy as np


def power_db(mono: np.ndarray, centres: np.ndarray, n_fft: int = 1024) -> np.ndarray:
    """dB power [n_fft // 2 + 1, len(centres)] of Hann-windowed frames of ``mono`` [S] centred on the
    sample indices ``centres`` (the signal is zero-padded by half a frame at both ends)."""
    mono = np.asarray(mono, dtype=np.float32)
    padded = np.pad(mono, (n_fft // 2, n_fft // 2))
    frames = padded[np.asarray(centres, dtype=np.int64)[:, None] + np.arange(n_fft)[None]] * np.hanning(n_fft)[None]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, n_fft/2 + 1)
    return 10 * np.log10(power.T + 1e-12)


def frame_centres(samples: int, hop: int) -> np.ndarray:
    """Every ``hop``-th sample index: the centres of a spectrogram's frames."""
    return np.arange(0, max(samples, 1), hop)
