"""Beats and cuts: the tracker on click tracks and on real music rendered offline (a music21 score
through fluidsynth, beats known from the tempo), each measure against a hand-computed value, the
rerank's choice and the nudge's stretch."""

import shutil

import numpy as np
import pytest
from conftest import require_installed

from video_bgm import beats, cutsync
from video_bgm.synthetic import click_track

SR = 32000
CHORALE, REEL = "bach/bwv66.6", "ryansMammoth/BanjoReel"


def _nearest(times, t):
    times = np.asarray(times)
    return float(times[np.abs(times - t).argmin()])


def _click_onset(audio, near, sr=SR):
    """Where the first click sample above a threshold lies within 60 ms before to 90 ms after ``near`` (s)."""
    lo = round((near - 0.06) * sr)
    above = np.nonzero(np.abs(np.atleast_2d(audio)[0, lo : lo + round(0.15 * sr)]) > 0.05)[0]
    return lo / sr + above[0] / sr


@pytest.mark.parametrize("bpm", [90, 120, 150])
def test_the_tracker_finds_every_click_of_a_click_track(bpm):
    clicks = np.arange(0.4, 15.0, 60 / bpm)
    found = beats.detect_beats(click_track(clicks, 15.0, SR), SR)
    steady = clicks[clicks > 2.0]  # the tracker may need a beat or two to lock on
    errors = [abs(_nearest(found, c) - c) for c in steady]
    assert max(errors) < 0.02
    assert len(found) <= len(clicks)  # no beats between the clicks


@pytest.mark.parametrize("name,bpm", [(CHORALE, 100), (REEL, 110)])
def test_the_tracker_finds_the_beats_of_rendered_music(rendered_music, name, bpm):
    music = rendered_music(name, bpm)[: 20 * SR]
    found = beats.detect_beats(music, SR)
    grid = np.arange(0, 21, 60 / bpm)  # quarter notes from the first note
    errors = np.array([abs(_nearest(grid, b) - b) for b in found])
    assert len(found) >= 0.8 * 20 * bpm / 60
    assert np.mean(errors <= 0.05) >= 0.9
    assert abs(np.median(np.diff(found)) - 60 / bpm) < 0.02 * 60 / bpm


def test_silence_has_no_beats():
    assert len(beats.detect_beats(np.zeros(SR * 3, dtype=np.float32), SR)) == 0


# --- the measures, against hand-computed values ------------------------------------------------
def test_loris_scores_as_their_code_computes_them():
    reference = [1, 0, 1, 1, 0, 1, 1]  # cut to the generated length (5): 3 beats
    generated = [1, 1, 0, 1, 1]  # 4 beats, hits in bins 0 and 3
    bcs, bhs = beats.loris_scores(reference, generated)
    assert bcs == pytest.approx(2 / 4) and bhs == pytest.approx(2 / 3)
    assert beats.loris_scores([0, 0], [0, 0]) == (0.0, 0.0)
    with pytest.raises(ValueError, match="one-second bins"):
        beats.loris_scores([1, 1], [1, 1, 1])


def test_loris_beats_mark_the_one_second_bins_that_hold_an_onset():
    audio = click_track([0.3, 1.6, 4.2], 5.5, SR)
    assert beats.loris_beats(audio, SR).tolist() == [1, 1, 0, 0, 1, 0]


def test_cuts_on_a_beat_counts_cuts_within_50_ms():
    assert beats.cuts_on_beat([1.0, 2.0, 3.0], [1.04, 2.06, 2.96, 4.0]) == pytest.approx(2 / 3)
    assert beats.cuts_on_beat([], [1.0]) is None
    assert beats.cuts_on_beat([1.0], []) == 0.0


def test_cut_beat_iou_pairs_cuts_and_beats_one_to_one_within_half_a_second():
    # 1.0-1.3 and 2.0-2.4 pair; 3.0 has no beat within 0.5 s; 1.45 and 5.0 stay single
    assert beats.cut_beat_iou([1.0, 2.0, 3.0], [1.3, 1.45, 2.4, 5.0]) == pytest.approx(2 / (3 + 4 - 2))
    assert beats.cut_beat_iou([1.0, 1.2], [1.1]) == pytest.approx(1 / 2)  # one beat serves one cut
    assert beats.cut_beat_iou([], [1.0]) is None


# --- rerank -----------------------------------------------------------------------------------
def test_rerank_keeps_the_candidate_whose_beat_is_on_the_cut(rendered_music):
    music = rendered_music(CHORALE, 100)[: 12 * SR]  # beats every 0.6 s from 0
    delays = [0.0, 0.35, 0.2, 0.1]  # candidate i: the music delayed by delays[i]
    candidates = np.stack([np.concatenate([np.zeros(round(d * SR), np.float32), music])[: 12 * SR] for d in delays])
    cut = 6.0 + 0.2  # a beat of the candidate delayed by 0.2 s
    kept, scores = cutsync.choose(candidates[:, 3 * SR :], SR, 3.0, [cut])
    assert kept == 2
    assert scores[2] < 0.03 and min(s for i, s in enumerate(scores) if i != 2) > 0.07


def test_hit_error_is_the_mean_capped_distance():
    assert cutsync.hit_error([1.0, 2.0], [1.1, 5.0]) == pytest.approx((0.1 + 0.5) / 2)
    assert cutsync.hit_error([], [1.0]) == 0.0


# --- nudge ------------------------------------------------------------------------------------
def test_anchors_keep_every_stretch_within_the_bound():
    knots, skipped = cutsync.anchors([3.2, 6.4, 9.05], [0.25 + 0.5 * k for k in range(24)], 12.0, 0.03)
    # 3.2 <- 3.25; 6.4 <- 6.25 needs (6.4 - 3.2) / 3 = +6.7 %: left; 9.05 <- 9.25 would leave the
    # last stretch (12 - 9.05) / (12 - 9.25) = +7.3 %: left
    assert knots == [(0.0, 0.0), (3.25, 3.2), (12.0, 12.0)]
    assert skipped == [6.4, 9.05]
    for (x0, y0), (x1, y1) in zip(knots, knots[1:]):
        assert abs((y1 - y0) / (x1 - x0) - 1) <= 0.03


@pytest.mark.parametrize("stretcher", cutsync.STRETCHERS)
def test_nudge_moves_known_beats_onto_the_cuts_and_keeps_the_length(stretcher):
    if stretcher == "rubberband":
        require_installed("Rubber Band", shutil.which("rubberband") is not None,
                           "apt-get install -y rubberband-cli", "REQUIRE_RUBBERBAND")
    clicks = np.arange(0.25, 12, 0.5)
    audio = click_track(clicks, 12.0, SR, channels=2)
    cuts = [3.2, 7.28]  # 50 ms before the click at 3.25 s, 30 ms after the one at 7.25 s
    out, done = cutsync.nudge(audio, SR, cuts, 0.03, stretcher=stretcher)
    assert out.shape == audio.shape
    assert [c for c, _ in done.moved] == cuts and not done.skipped
    tolerance = 0.010 if stretcher == "rubberband" else 0.020  # the phase vocoder smears attacks
    for cut in cuts:
        assert abs(_click_onset(out, cut) - cut) <= tolerance
    # a click far from any cut moves as the time map says: 10.25 s maps to 7.28 + 2.97 * 4.72 / 4.75
    expected = 7.28 + (10.25 - 7.25) * (12 - 7.28) / (12 - 7.25)
    assert abs(_click_onset(out, expected) - expected) <= tolerance


def test_nudge_leaves_music_alone_when_no_beat_is_within_reach():
    audio = click_track(np.arange(0.25, 6, 0.5), 6.0, SR)
    out, done = cutsync.nudge(audio, SR, [3.0], 0.01, beats=np.arange(0.25, 6, 0.5), stretcher="phase-vocoder")
    assert np.array_equal(out, audio) and done.skipped == (3.0,) and not done.moved


def test_nudge_puts_rendered_music_on_the_cuts(rendered_music):
    music = rendered_music(REEL, 110)[: 15 * SR]
    period = 60 / 110
    cuts = [round(6 * period + 0.04, 3), round(16 * period - 0.045, 3)]  # 40-45 ms off two beats
    before = beats.cuts_on_beat(cuts, beats.detect_beats(music, SR), tolerance=0.02)
    out, done = cutsync.nudge(music, SR, cuts, 0.03)
    assert out.shape == music.shape and len(done.moved) == 2
    assert beats.cuts_on_beat(cuts, beats.detect_beats(out, SR), tolerance=0.02) > before
