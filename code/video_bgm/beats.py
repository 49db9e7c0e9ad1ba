"""Beats of music, and how well they meet a video's cuts.

One definition of each measure, shared by generation (rerank, nudge) and evaluation:

- ``detect_beats``: librosa's dynamic-programming beat tracker (Ellis 2007; offline, no weights),
  each beat then moved to the start of the note attack it sits on (librosa reports the peak of the
  onset strength, 15-45 ms after a click or a piano note begins: too late for a 50 ms test).
- ``loris_beats`` / ``loris_scores``: Beats Coverage Score and Beats Hit Score exactly as LORIS's
  released ``beats_scores.py`` computes them (Yu et al., "Long-Term Rhythmic Video Soundtracker",
  ICML 2023, github.com/OpenGVLab/LORIS): onsets of the music at 22.05 kHz with their
  ``onset_detect`` settings, quantised to one-second bins; BHS = bins where both the reference and
  the generated music have an onset / bins where the reference has one; BCS = the same hits / bins
  where the generated music has one.
- ``cut_beat_iou``: beats vs cuts as an intersection over union with a 0.5 s tolerance (VeM, Tong
  et al., AAAI 2026): VeM's text names the measure but its formula could not be found; ours
  matches each cut to at most one beat within the tolerance (one-to-one, nearest first) and is
  matched / (cuts + beats - matched).
- ``cuts_on_beat``: our own: the share of cuts within 50 ms of a beat (what a viewer hears as "on").
"""

from __future__ import annotations

import numpy as np

BEAT_HOP = 512  # samples per onset-strength frame (16 ms at 32 kHz)
ATTACK_SNAP_FRAMES = 2  # a tracked beat snaps to an onset at most this many frames away
ON_BEAT_TOLERANCE = 0.05  # s: "cuts on a beat"
IOU_TOLERANCE = 0.5  # s: VeM's beat-vs-cut IoU

# LORIS's beats_scores.py: librosa.load's default rate and its onset_detect settings.
LORIS_SAMPLE_RATE = 22050
LORIS_ONSET = dict(wait=1, delta=0.2, pre_avg=3, post_avg=3, pre_max=3, post_max=3)


def mono(audio: np.ndarray) -> np.ndarray:
    """float32 [S] from [S] or [C, S] (channels averaged)."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio.mean(axis=0) if audio.ndim == 2 else audio


def detect_beats(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Beat times in seconds (ascending) of ``audio`` [S] or [C, S]; empty for silence or noise
    without a pulse the tracker can follow."""
    import librosa

    y = mono(audio)
    if y.size < BEAT_HOP * 8 or not np.any(y):
        return np.zeros(0)
    envelope = librosa.onset.onset_strength(y=y, sr=sample_rate, hop_length=BEAT_HOP)
    _, frames = librosa.beat.beat_track(onset_envelope=envelope, sr=sample_rate, hop_length=BEAT_HOP)
    frames = np.asarray(frames, dtype=int)
    onsets = librosa.onset.onset_detect(onset_envelope=envelope, sr=sample_rate, hop_length=BEAT_HOP)
    if len(frames) and len(onsets):
        starts = librosa.onset.onset_backtrack(onsets, envelope)  # each onset's attack start
        nearest = np.abs(onsets[None, :] - frames[:, None]).argmin(axis=1)
        close = np.abs(onsets[nearest] - frames) <= ATTACK_SNAP_FRAMES
        frames = np.where(close, starts[nearest], frames)
    return np.unique(librosa.frames_to_time(frames, sr=sample_rate, hop_length=BEAT_HOP))


# --- LORIS -----------------------------------------------------------------------------------
def loris_beats(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """LORIS's beat vector: int [ceil(seconds)], 1 where a one-second bin holds an onset."""
    import librosa

    y = mono(audio)
    if sample_rate != LORIS_SAMPLE_RATE:
        y = librosa.resample(y, orig_sr=sample_rate, target_sr=LORIS_SAMPLE_RATE)
    bins = np.zeros(int(np.ceil(len(y) / LORIS_SAMPLE_RATE)), dtype=int)
    if not np.any(y):
        return bins
    onsets = librosa.onset.onset_detect(y=y, sr=LORIS_SAMPLE_RATE, units="time", **LORIS_ONSET)
    bins[np.trunc(onsets).astype(int)] = 1
    return bins


def loris_scores(reference: np.ndarray, generated: np.ndarray) -> tuple[float, float]:
    """(BCS, BHS) of two LORIS beat vectors, as their ``beat_scores`` computes them: the reference is
    cut to the generated one's length; a score with nothing to divide by is 0."""
    reference = np.asarray(reference)[: len(generated)]
    generated = np.asarray(generated)
    if len(reference) != len(generated):
        raise ValueError(f"the reference has {len(reference)} one-second bins, the generated music {len(generated)}")
    hits = int(np.sum((reference == 1) & (generated == 1)))
    total, cover = int(reference.sum()), int(generated.sum())
    return (hits / cover if cover else 0.0), (hits / total if total else 0.0)


# --- beats against cuts ----------------------------------------------------------------------
def cut_offsets(cuts, beats) -> np.ndarray:
    """Seconds from each cut to its nearest beat (inf without beats)."""
    cuts, beats = np.asarray(cuts, dtype=float), np.asarray(beats, dtype=float)
    if not len(beats):
        return np.full(len(cuts), np.inf)
    return np.abs(cuts[:, None] - beats[None, :]).min(axis=1) if len(cuts) else np.zeros(0)


def cuts_on_beat(cuts, beats, tolerance: float = ON_BEAT_TOLERANCE) -> float | None:
    """The share of cuts within ``tolerance`` s of a beat; None without cuts (nothing to hit)."""
    if not len(cuts):
        return None
    return float(np.mean(cut_offsets(cuts, beats) <= tolerance + 1e-9))


def matched_pairs(cuts, beats, tolerance: float) -> int:
    """How many cuts can be paired one-to-one with beats within ``tolerance`` (closest pairs first)."""
    cuts, beats = np.asarray(cuts, dtype=float), np.asarray(beats, dtype=float)
    pairs = sorted((abs(c - b), i, j) for i, c in enumerate(cuts) for j, b in enumerate(beats)
                   if abs(c - b) <= tolerance + 1e-9)
    used_cuts, used_beats = set(), set()
    for _, i, j in pairs:
        if i not in used_cuts and j not in used_beats:
            used_cuts.add(i)
            used_beats.add(j)
    return len(used_cuts)


def cut_beat_iou(cuts, beats, tolerance: float = IOU_TOLERANCE) -> float | None:
    """matched / (cuts + beats - matched), pairs within ``tolerance`` s; None without cuts."""
    if not len(cuts):
        return None
    matched = matched_pairs(cuts, beats, tolerance)
    return matched / (len(cuts) + len(beats) - matched)
