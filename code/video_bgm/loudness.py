"""Loudness (ITU-R BS.1770-4), normalisation, fades, and mixing the music under a video's own sound.

Audio is float32 ``[channels, samples]`` as everywhere in this package.

- :func:`integrated_loudness`: BS.1770 integrated loudness in LUFS: K-weighting (a high shelf and
  a high-pass, designed for any sample rate as libebur128 does), mean square per channel over
  400 ms blocks with 75 % overlap, channel weights 1 (L, R, or the one channel of mono), an
  absolute gate at -70 LUFS and a relative gate 10 LU under the absolutely gated loudness. Mono
  is one channel, as the recommendation defines it: a full-scale 997 Hz sine reads -3.01 LUFS
  (some tools treat mono as two channels and read 0.0).
- :func:`finish`: what every output gets: the music normalised to a loudness target (default
  -16 LUFS), short raised-cosine fades in and out, and, with ``keep_original`` (dB), the video's
  own soundtrack mixed in: see :class:`Mix`.
"""

from __future__ import annotations

import math

import numpy as np

from .config import DEFAULT_DUCK, DEFAULT_FADE, DEFAULT_LOUDNESS, Mix  # noqa: F401 (Mix's home is config)

PEAK_CEILING = 0.99  # samples are scaled (never clipped) to stay under this
_BLOCK, _STEP = 0.4, 0.1  # s: BS.1770 gating blocks and their hop
_ABSOLUTE_GATE, _RELATIVE_GATE = -70.0, -10.0
_SILENCE = float("-inf")


def k_weighting(sample_rate: int) -> np.ndarray:
    """BS.1770's K-weighting as second-order sections [2, 6] for ``sample_rate``.

    The filters' analogue parameters (libebur128's) through the bilinear transform: at 48 kHz
    they give the coefficients printed in the recommendation.
    """
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196  # stage 1: high shelf
    k = math.tan(math.pi * f0 / sample_rate)
    vh = 10 ** (gain_db / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0,
             1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    f0, q = 38.13547087602444, 0.5003270373238773  # stage 2: high-pass (RLB weighting)
    k = math.tan(math.pi * f0 / sample_rate)
    a0 = 1 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, highpass])


def _block_powers(audio: np.ndarray, sample_rate: int, block: float = _BLOCK, step: float = _STEP) -> np.ndarray:
    """K-weighted mean square of each gating block, summed over channels: [blocks]."""
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    weighted = _sosfilt()(k_weighting(sample_rate), audio, axis=-1)
    size, hop = round(block * sample_rate), round(step * sample_rate)
    if weighted.shape[1] < size:  # shorter than one block: the whole signal is the block
        return (weighted ** 2).mean(axis=1).sum(keepdims=True) if weighted.shape[1] else np.zeros(0)
    # Mean squares from a running sum: O(samples), whatever the overlap.
    cumulative = np.concatenate([np.zeros((weighted.shape[0], 1)), np.cumsum(weighted ** 2, axis=1)], axis=1)
    starts = np.arange(0, weighted.shape[1] - size + 1, hop)
    return ((cumulative[:, starts + size] - cumulative[:, starts]) / size).sum(axis=0)


def _to_lufs(power: np.ndarray | float) -> np.ndarray | float:
    with np.errstate(divide="ignore"):
        return -0.691 + 10 * np.log10(power)


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS (``-inf`` for silence or anything under the -70 LUFS gate)."""
    powers = _block_powers(audio, sample_rate)
    powers = powers[_to_lufs(powers) > _ABSOLUTE_GATE]
    if len(powers) == 0:
        return _SILENCE
    relative = _to_lufs(powers.mean()) + _RELATIVE_GATE
    gated = powers[_to_lufs(powers) > relative]
    return float(_to_lufs(gated.mean()))


def momentary_loudness(audio: np.ndarray, sample_rate: int, hop: float = 0.01) -> np.ndarray:
    """Loudness (LUFS) of the 400 ms ending at each ``hop`` (the first blocks are shorter): [S / hop]."""
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    weighted = _sosfilt()(k_weighting(sample_rate), audio, axis=-1)
    size, step = round(_BLOCK * sample_rate), max(1, round(hop * sample_rate))
    cumulative = np.concatenate([np.zeros((weighted.shape[0], 1)), np.cumsum(weighted ** 2, axis=1)], axis=1)
    ends = np.arange(step, weighted.shape[1] + 1, step)
    starts = np.maximum(ends - size, 0)
    power = ((cumulative[:, ends] - cumulative[:, starts]) / np.maximum(ends - starts, 1)).sum(axis=0)
    return _to_lufs(power)


def gain_db(audio: np.ndarray, db: float) -> np.ndarray:
    return (audio * 10 ** (db / 20)).astype(np.float32)


def normalise(audio: np.ndarray, sample_rate: int, target: float = DEFAULT_LOUDNESS) -> np.ndarray:
    """``audio`` scaled to ``target`` LUFS, then scaled down if a peak would pass PEAK_CEILING
    (so very peaky audio can end up quieter than the target; it never clips). Silence stays silent."""
    measured = integrated_loudness(audio, sample_rate)
    if measured == _SILENCE:
        return np.asarray(audio, dtype=np.float32)
    return limit_peak(gain_db(audio, target - measured))


def limit_peak(audio: np.ndarray, peak: float = PEAK_CEILING) -> np.ndarray:
    loudest = float(np.abs(audio).max(initial=0.0))
    return (audio * (peak / loudest)).astype(np.float32) if loudest > peak else np.asarray(audio, dtype=np.float32)


def raised_cosine(samples: int) -> np.ndarray:
    """A fade-in ramp 0 -> 1 over ``samples`` (float32): sin^2, so a fade-in and the matching fade-out
    (1 - ramp) sum to exactly 1."""
    return (np.sin(0.5 * np.pi * (np.arange(samples) + 0.5) / samples) ** 2).astype(np.float32)


def fade(audio: np.ndarray, sample_rate: int, fade_in: float = DEFAULT_FADE, fade_out: float = DEFAULT_FADE) -> np.ndarray:
    """Raised-cosine fades over the first ``fade_in`` and last ``fade_out`` seconds (at most half each)."""
    audio = np.array(audio, dtype=np.float32)
    n = audio.shape[-1]
    for seconds, at_start in ((fade_in, True), (fade_out, False)):
        length = min(round(seconds * sample_rate), n // 2)
        if length <= 0:
            continue
        ramp = raised_cosine(length)
        if at_start:
            audio[..., :length] *= ramp
        else:
            audio[..., n - length:] *= ramp[::-1]
    return audio


def duck_gain(original: np.ndarray, sample_rate: int, depth_db: float, threshold: float,
              attack: float = 0.05, release: float = 0.5, hop: float = 0.01) -> np.ndarray:
    """Per-sample linear gain [S] for the music: ``-depth_db`` while the original's momentary
    loudness is above ``threshold`` LUFS, 0 dB elsewhere, moving smoothly (the gain falls with
    time constant ``attack`` and recovers with ``release``, in seconds)."""
    samples = original.shape[-1]
    if depth_db <= 0 or samples == 0:
        return np.ones(samples, dtype=np.float32)
    loud = momentary_loudness(original, sample_rate, hop) > threshold
    target = np.where(loud, -float(depth_db), 0.0)
    down, up = 1 - math.exp(-hop / attack), 1 - math.exp(-hop / release)
    smooth = np.empty_like(target)
    level = 0.0
    for i, goal in enumerate(target):  # one-pole smoothing in dB, faster down than up (100 steps/s)
        level += (down if goal < level else up) * (goal - level)
        smooth[i] = level
    # each value holds at the end of its hop: interpolate between them over the samples
    times = (np.arange(len(smooth)) + 1) * hop * sample_rate
    db = np.interp(np.arange(samples), np.concatenate([[0.0], times]), np.concatenate([[0.0], smooth]))
    return (10 ** (db / 20)).astype(np.float32)




def finish(music: np.ndarray, sample_rate: int, mix: Mix, original: np.ndarray | None = None,
           notes: list[str] | None = None) -> np.ndarray:
    """The audio for the output video: ``music`` [C, S] finished per ``mix``; with ``original``
    ([C, S'] at ``sample_rate``, the video's own sound) and ``mix.keep_original``, the mix of both,
    max(S, S') samples long. What the user should know (a silent original) goes to ``notes``."""
    music = fade(music, sample_rate, mix.fade, mix.fade)
    if mix.keep_original is None or original is None:
        return normalise(music, sample_rate, mix.loudness) if mix.loudness is not None else limit_peak(music)
    original = np.asarray(original, dtype=np.float32)
    level = integrated_loudness(original, sample_rate)
    if level == _SILENCE:
        if notes is not None:
            notes.append("the video's own sound is silent: the output has the music only")
        return normalise(music, sample_rate, mix.loudness) if mix.loudness is not None else limit_peak(music)
    music_level = integrated_loudness(music, sample_rate)
    if music_level != _SILENCE:
        music = gain_db(music, level + mix.keep_original - music_level)
    length = max(music.shape[1], original.shape[1])
    mixed = np.zeros((music.shape[0], length), dtype=np.float32)
    mixed[:, : original.shape[1]] = original
    ducking = duck_gain(original, sample_rate, mix.duck, level + _RELATIVE_GATE)
    n = min(music.shape[1], len(ducking))
    mixed[:, :n] += music[:, :n] * ducking[:n]
    mixed[:, n : music.shape[1]] += music[:, n:]
    return normalise(mixed, sample_rate, mix.loudness) if mix.loudness is not None else limit_peak(mixed)


def _sosfilt():
    from scipy import signal  # imported on first use: the commands import this module for its defaults

    return signal.sosfilt
