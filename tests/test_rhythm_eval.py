"""evaluate.py's rhythm measures on pieces with known beats: click tracks over a video with planted cuts."""

import numpy as np
import pytest

from video_bgm import media
from video_bgm.evaluation import rhythm
from video_bgm.synthetic import click_track, write_test_video
from video_bgm.data.clips import Clip

CUTS = [1.0, 3.0]  # on frames at 25 fps
COLOURS = [(200, 30, 30), (20, 20, 90), (60, 230, 60)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rhythm")
    video = write_test_video(folder / "cuts.mp4", duration=4.0, fps=25, size=(96, 64), audio=False,
                             color_fn=lambda t: COLOURS[sum(t >= c - 1e-9 for c in CUTS)])
    reference = folder / "reference.wav"  # onsets in the one-second bins 0, 1 and 3
    media.write_wav(reference, click_track([0.5, 1.5, 3.0], 4.0, 32000), 32000)
    return Clip("cuts", video, reference)


def _piece(path, clicks):
    media.write_wav(path, click_track(clicks, 4.0, 32000), 32000)
    return path


def test_music_with_beats_on_the_cuts_scores_them_and_music_off_them_does_not(clip, tmp_path):
    cuts = rhythm.video_cuts([clip], 4.0)
    assert [round(c, 2) for c in cuts["cuts"]] == CUTS
    reference = rhythm.reference_beats([clip], 4.0)
    assert reference["cuts"].tolist() == [1, 1, 0, 1]

    on = _piece(tmp_path / "on.wav", np.arange(0.0, 4.0, 0.5))  # 120 bpm, beats on both cuts
    off = _piece(tmp_path / "off.wav", np.arange(0.25, 4.0, 0.5))  # the same, a quarter beat later
    scores_on = rhythm.score({"cuts": [on]}, cuts, reference, 4.0)
    scores_off = rhythm.score({"cuts": [off]}, cuts, reference, 4.0)
    assert scores_on["cuts"] == 2 and scores_on["cuts_on_beat"] == 1.0
    assert scores_off["cuts_on_beat"] == 0.0
    assert scores_on["cut_beat_iou"] > 0  # both cuts paired with a beat
    # LORIS: every second bin of both pieces holds an onset: BHS = 3/3, BCS = 3/4
    assert scores_on["bhs"] == pytest.approx(1.0) and scores_on["bcs"] == pytest.approx(0.75)


def test_a_reference_row_has_no_loris_scores(clip):
    cuts = rhythm.video_cuts([clip], 4.0)
    scores = rhythm.score({"cuts": [clip.audio]}, cuts, None, 4.0)
    assert scores["bcs"] is None and scores["bhs"] is None
    assert scores["cuts_on_beat"] is not None
