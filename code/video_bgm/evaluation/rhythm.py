"""Beat alignment of every system's music: with the reference music (LORIS's BCS/BHS) and with the
video's shot cuts (VeM's beat-vs-cut IoU, our cuts-on-a-beat rate). The measures are
``video_bgm.beats``; this module applies them to the pieces of an evaluation.

Per system, over take 0 of each clip and its first ``seconds``: BCS and BHS are the means of the
per-clip scores (as LORIS averages them); the IoU is the mean over clips with cuts; cuts on a beat
is pooled over all cuts (the share of every cut in the set). The cuts are the video's own
(``shots.detect_cuts``), the same for every system, so the reference row says how the original
editor cut to its music.
"""

from __future__ import annotations

import numpy as np

from .. import beats, media
from ..errors import MediaError
from ..shots import detect_cuts

SAMPLE_RATE = 32000  # the rate the beats are tracked at (MusicGen's; LORIS resamples to its own)


def video_cuts(clips, seconds: float, log=print) -> dict[str, list[float]]:
    """{clip id: its cuts before ``seconds``} for the clips whose video can be read."""
    found = {}
    for clip in clips:
        try:
            found[clip.id] = [c for c in detect_cuts(clip.video) if c < seconds]
        except MediaError as err:
            log(f"no cuts for {clip.id}: {err}")
    return found


def _music(path, seconds: float) -> np.ndarray:
    return media.decode_audio(path, SAMPLE_RATE, 1, duration=seconds)[0]


def reference_beats(clips, seconds: float) -> dict[str, np.ndarray]:
    """{clip id: LORIS beat vector of its reference music} (clips whose music cannot be read are left out)."""
    out = {}
    for clip in clips:
        try:
            out[clip.id] = beats.loris_beats(_music(clip.audio, seconds), SAMPLE_RATE)
        except MediaError:
            continue
    return out


def score(pieces: dict[str, list], cuts: dict[str, list[float]], reference: dict[str, np.ndarray] | None,
          seconds: float) -> dict:
    """The rhythm measures of one system: ``pieces`` {clip id: [paths of takes]}; ``reference``
    {clip id: LORIS beat vector} (None for the reference music itself)."""
    bcs, bhs, ious, offsets, clips_with_cuts = [], [], [], [], 0
    for clip_id, takes in pieces.items():
        music = _music(takes[0], seconds)
        if reference is not None and clip_id in reference:
            c, h = beats.loris_scores(reference[clip_id], beats.loris_beats(music, SAMPLE_RATE))
            bcs.append(c)
            bhs.append(h)
        clip_cuts = cuts.get(clip_id) or []
        if clip_cuts:
            clips_with_cuts += 1
            found = beats.detect_beats(music, SAMPLE_RATE)
            ious.append(beats.cut_beat_iou(clip_cuts, found))
            offsets.extend(beats.cut_offsets(clip_cuts, found).tolist())
    on_beat = float(np.mean(np.asarray(offsets) <= beats.ON_BEAT_TOLERANCE + 1e-9)) if offsets else None
    return {
        "bcs": float(np.mean(bcs)) if bcs else None,
        "bhs": float(np.mean(bhs)) if bhs else None,
        "cut_beat_iou": float(np.mean(ious)) if ious else None,
        "cuts_on_beat": on_beat,
        "cuts": len(offsets),
        "clips_with_cuts": clips_with_cuts,
    }


def table(metrics: dict, fmt) -> list[tuple[str, list[str], list[list[str]], str]]:
    """The report's rhythm table (empty when no system has the measures)."""
    rows = []
    for s in metrics["systems"].values():
        r = s.get("rhythm")
        if r:
            rows.append([s["name"], fmt(r["bcs"]), fmt(r["bhs"]), fmt(r["cut_beat_iou"]), fmt(r["cuts_on_beat"]),
                         fmt(r["cuts"])])
    if not rows:
        return []
    return [("Rhythm: beats against the reference music and the video's cuts",
             ["system", "BCS (LORIS)", "BHS ↑ (LORIS)", "beat-cut IoU ↑ (0.5 s)", "cuts on a beat ↑ (50 ms)", "cuts"],
             rows, "BCS/BHS: one-second onset bins of the music against the reference's (LORIS, Yu et al. 2023): "
                   "BHS = shared bins / reference bins, BCS = shared bins / the music's bins. Beat-cut IoU: cuts and "
                   "beats paired one-to-one within 0.5 s (after VeM, Tong et al. 2026). Cuts on a beat: the share of "
                   "the video's cuts (PySceneDetect) within 50 ms of a tracked beat.")]
