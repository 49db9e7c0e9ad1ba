"""Beats that land on the cuts, without retraining: rerank candidates, nudge the tempo.

- **Rerank** (``--candidates K``): a window whose new music holds a cut is sampled K times as rows
  of one batch (the decoder's weights are read once per step for all rows); each candidate is
  decoded around its cuts, its beats detected (``beats.detect_beats``), and the one whose beats
  lie nearest the cuts is kept (``hit_error``). The others are dropped: the piece stays one stream.
- **Nudge** (``--nudge PCT``): after generation, the music between two anchors is time-stretched,
  pitch unchanged, so that the beat nearest each cut lands on it; every stretch stays within PCT
  percent and the total length is kept. A cut whose beat would need more is left as it is. The
  stretcher is Rubber Band's R3 engine (Debian's ``rubberband-cli``) given the whole time map at once,
  which keeps attacks where the map puts them (a click lands within 1 ms of its cut); without it,
  librosa's phase vocoder stretches each stretch separately, which smears attacks by about 15 ms.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

from . import beats as beat_measures
from .loudness import raised_cosine

SCORE_CONTEXT = 3.0  # s of music each side of a cut a candidate is decoded and scored on
SEAM = 0.02  # s: crossfade between two differently stretched pieces of music


def hit_error(cuts, beats, cap: float = beat_measures.IOU_TOLERANCE) -> float:
    """Mean seconds from each cut to its nearest beat, each capped at ``cap`` (lower is better);
    the rerank's score. 0 without cuts."""
    if not len(cuts):
        return 0.0
    return float(np.mean(np.minimum(beat_measures.cut_offsets(cuts, beats), cap)))


@dataclass(frozen=True)
class Rerank:
    """One reranked window: each candidate's ``hit_error`` (s) and the one kept."""

    window: int
    cuts: tuple[float, ...]
    scores: tuple[float, ...]
    kept: int

    def describe(self) -> str:
        where = ", ".join(f"{c:.2f}" for c in self.cuts)
        scores = " ".join(f"{1000 * s:.0f}" for s in self.scores)
        return (f"window {self.window + 1}: cut at {where} s: {len(self.scores)} candidates, mean beat-to-cut "
                f"distance {scores} ms; kept {self.kept + 1} ({1000 * self.scores[self.kept]:.0f} ms)")


def choose(candidates: np.ndarray, sample_rate: int, start: float, cuts) -> tuple[int, list[float]]:
    """The candidate (row of ``candidates`` [R, C, S] or [R, S], music from ``start`` s) whose beats
    lie nearest ``cuts`` (s, absolute), and every candidate's ``hit_error``."""
    relative = [c - start for c in cuts]
    scores = [hit_error(relative, beat_measures.detect_beats(row, sample_rate)) for row in candidates]
    return int(np.argmin(scores)), scores


# --- nudge -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Nudge:
    """What ``nudge`` did: each moved cut with its beat's time before, and the cuts left alone."""

    moved: tuple[tuple[float, float], ...]  # (cut, beat before)
    skipped: tuple[float, ...]
    stretcher: str = ""

    def describe(self) -> str:
        worst = max((abs(c - b) for c, b in self.moved), default=0.0)
        return (f"nudge ({self.stretcher}): {len(self.moved)} beats moved onto their cuts (at most "
                f"{1000 * worst:.0f} ms), {len(self.skipped)} cuts left (their beats would need a larger stretch)")


STRETCHERS = ("rubberband", "phase-vocoder")


def default_stretcher() -> str:
    """Rubber Band where its command-line tool is installed, else librosa's phase vocoder."""
    return "rubberband" if shutil.which("rubberband") else "phase-vocoder"


def anchors(cuts, beats, duration: float, max_stretch: float) -> tuple[list[tuple[float, float]], list[float]]:
    """The time map's knots [(input s, output s)] from (0, 0) to (duration, duration) through
    (beat, cut) for each cut whose nearest beat can reach it with every stretch within
    ``max_stretch`` (a fraction: 0.03 = 3 %); and the cuts left out."""
    knots, skipped = [(0.0, 0.0)], []

    def fits(a, b):
        (x0, y0), (x1, y1) = a, b
        return x1 > x0 and y1 > y0 and abs((y1 - y0) / (x1 - x0) - 1) <= max_stretch + 1e-9

    beats = np.asarray(beats, dtype=float)
    for cut in sorted(cuts):
        if not len(beats) or not 0 < cut < duration:
            skipped.append(cut)
            continue
        beat = float(beats[np.abs(beats - cut).argmin()])
        if abs(beat - cut) < 0.5e-3:  # already on its beat: nothing to move
            continue
        if fits(knots[-1], (beat, float(cut))):
            knots.append((beat, float(cut)))
        else:
            skipped.append(cut)
    end = (duration, duration)
    while len(knots) > 1 and not fits(knots[-1], end):
        skipped.append(knots.pop()[1])
    knots.append(end)
    return knots, sorted(skipped)


def stretch(audio: np.ndarray, samples: int) -> np.ndarray:
    """``audio`` [C, S] time-stretched to exactly ``samples`` samples, pitch unchanged (phase vocoder)."""
    import librosa

    if audio.shape[-1] == samples:
        return audio.copy()
    out = librosa.effects.time_stretch(audio, rate=audio.shape[-1] / samples)
    if out.shape[-1] >= samples:
        return out[..., :samples]
    return np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, samples - out.shape[-1])])


def nudge(audio: np.ndarray, sample_rate: int, cuts, max_stretch: float,
          beats=None, stretcher: str | None = None) -> tuple[np.ndarray, Nudge]:
    """``audio`` [C, S] or [S] with the beat nearest each cut moved onto it (see the module
    docstring); same shape. ``beats``: the music's beat times (default: ``beats.detect_beats``);
    ``stretcher``: one of ``STRETCHERS`` (default: ``default_stretcher()``)."""
    stretcher = stretcher or default_stretcher()
    if stretcher not in STRETCHERS:
        raise ValueError(f"unknown stretcher {stretcher!r}: choose one of {', '.join(STRETCHERS)}")
    audio = np.asarray(audio, dtype=np.float32)
    squeeze = audio.ndim == 1
    audio = audio[None] if squeeze else audio
    duration = audio.shape[-1] / sample_rate
    if beats is None:
        beats = beat_measures.detect_beats(audio, sample_rate)
    knots, skipped = anchors(cuts, beats, duration, max_stretch)
    moved = tuple((y, x) for x, y in knots[1:-1])
    if not moved:
        out = audio
    elif stretcher == "rubberband":
        out = _rubberband(audio, sample_rate, knots)
    else:
        out = _phase_vocoder(audio, sample_rate, knots)
    return (out[0] if squeeze else out), Nudge(moved, tuple(skipped), stretcher)


def _rubberband(audio: np.ndarray, sample_rate: int, knots) -> np.ndarray:
    """Rubber Band (R3 engine) through the whole time map in one pass: no seams."""
    import soundfile

    total = audio.shape[-1]
    with tempfile.TemporaryDirectory(prefix="video-bgm-nudge-") as tmp:
        source, target, timemap = (os.path.join(tmp, name) for name in ("in.wav", "out.wav", "map.txt"))
        soundfile.write(source, audio.T, sample_rate, subtype="FLOAT")
        with open(timemap, "w") as f:  # source sample -> target sample, the ends implied by -D
            f.writelines(f"{round(x * sample_rate)} {round(y * sample_rate)}\n" for x, y in knots[1:-1])
        done = subprocess.run(["rubberband", "-q", "-3", "-D", f"{total / sample_rate:.9f}", "-M", timemap,
                               source, target], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"rubberband failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        out, _ = soundfile.read(target, dtype="float32", always_2d=True)
    out = out.T
    if out.shape[-1] >= total:
        return np.ascontiguousarray(out[:, :total])
    return np.pad(out, [(0, 0), (0, total - out.shape[-1])])


def _phase_vocoder(audio: np.ndarray, sample_rate: int, knots) -> np.ndarray:
    """librosa's phase vocoder on each stretch between knots, joined by short crossfades."""
    total = audio.shape[-1]
    out = np.zeros_like(audio)
    seam = round(SEAM * sample_rate)
    ramp = raised_cosine(seam)  # 0 -> 1
    margin = 4 * seam  # input context each side, so the vocoder's edges fall outside what is kept
    for (x0, y0), (x1, y1) in zip(knots, knots[1:]):
        a_in, b_in = round(x0 * sample_rate), round(x1 * sample_rate)
        a_out, b_out = round(y0 * sample_rate), round(y1 * sample_rate)
        # this piece's share: [a_out, b_out) plus half a seam each side (not past the ends)
        lo, hi = max(0, a_out - seam // 2), min(total, b_out + seam - seam // 2)
        if (b_out - a_out) == (b_in - a_in):  # unstretched: the samples as they are
            shift = a_in - a_out
            piece = np.zeros((audio.shape[0], hi - lo), dtype=np.float32)
            part = audio[:, max(0, lo + shift) : hi + shift]
            piece[:, : part.shape[-1]] = part
        else:
            ratio = (b_out - a_out) / (b_in - a_in)
            pad_in_lo, pad_in_hi = min(a_in, margin), min(total - b_in, margin)
            source = audio[:, a_in - pad_in_lo : b_in + pad_in_hi]
            stretched = stretch(source, round(source.shape[-1] * ratio))
            origin = round(pad_in_lo * ratio)  # where a_out falls in `stretched`
            take = stretched[:, max(0, origin - (a_out - lo)) : origin + (hi - a_out)]
            piece = np.zeros((audio.shape[0], hi - lo), dtype=np.float32)
            piece[:, : take.shape[-1]] = take[:, : hi - lo]
        piece = piece.astype(np.float32, copy=True)
        if lo > 0:  # fade in over the seam at the left knot
            piece[:, :seam] *= ramp[: piece.shape[-1]]
        if hi < total:
            piece[:, -seam:] *= ramp[::-1][-piece.shape[-1]:] if piece.shape[-1] < seam else ramp[::-1]
        out[:, lo:hi] += piece
    return out
