"""Shot cuts: PySceneDetect on videos with cuts planted at known times, and editors' marker files."""

import pytest

from video_bgm.errors import MediaError
from video_bgm.shots import detect_cuts, read_cuts_file
from video_bgm.synthetic import write_test_video, write_text_file

FPS = 25
PLANTED = [1.24, 2.6, 3.08]
COLOURS = [(200, 30, 30), (20, 20, 90), (60, 230, 60), (40, 40, 250)]  # hue and brightness jump at each cut


def shot_colour(t):
    """The planted shots' colour at ``t`` s (other tests plant the same cuts)."""
    return COLOURS[sum(t >= cut - 1e-9 for cut in PLANTED)]


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("shots") / "cuts.mp4"
    return write_test_video(path, duration=4.0, fps=FPS, size=(96, 64), color_fn=shot_colour, audio=False)


@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_detected_cuts_are_within_one_frame_of_the_planted_ones(cut_video, detector):
    cuts = detect_cuts(cut_video, detector=detector)
    assert len(cuts) == len(PLANTED)
    for found, planted in zip(cuts, PLANTED):
        assert abs(found - planted) <= 1 / FPS + 1e-6


def test_a_shorter_minimum_shot_keeps_short_shots_and_a_longer_one_merges_them(cut_video):
    # the shot from 2.6 to 3.08 s lasts 0.48 s
    assert len(detect_cuts(cut_video, min_shot_seconds=0.2)) == 3
    assert len(detect_cuts(cut_video, min_shot_seconds=1.0)) < 3


def test_one_shot_has_no_cuts(tmp_path):
    path = write_test_video(tmp_path / "one.mp4", duration=2.0, fps=FPS, color_fn=lambda t: (90, 90, 90),
                            audio=False)
    assert detect_cuts(path) == []


def test_a_high_threshold_finds_nothing(cut_video):
    assert detect_cuts(cut_video, threshold=255.0) == []


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        detect_cuts(tmp_path / "missing.mp4")
    with pytest.raises(MediaError, match="not.txt"):
        detect_cuts(write_text_file(tmp_path / "not.txt"))
    with pytest.raises(ValueError, match="unknown shot detector"):
        detect_cuts(tmp_path / "missing.mp4", detector="histogram")


def test_marker_files_are_read_sorted_and_checked(tmp_path):
    markers = tmp_path / "cuts.txt"
    markers.write_text("# markers\n3.5\n\n1.25\n00:00:02.0\n1:05\n1.25\n")
    assert read_cuts_file(markers) == [1.25, 2.0, 3.5, 65.0]
    markers.write_text("1.0\nsoon\n")
    with pytest.raises(MediaError, match=r"cuts.txt: line 2: 'soon' is not a time"):
        read_cuts_file(markers)
    markers.write_text("1.0\n9.0\n")
    with pytest.raises(MediaError, match=r"line 2: cut at 9 s is past the video's end"):
        read_cuts_file(markers, duration=4.0)
    with pytest.raises(MediaError, match="cuts file not found"):
        read_cuts_file(tmp_path / "none.txt")


def test_detection_leaves_ffmpegs_own_logging_off(cut_video, tmp_path, capfd):
    """PySceneDetect turns FFmpeg's logging on for the whole process unless told not to; then every
    later encode prints x264's settings and AAC's statistics (two lines per prepared clip)."""
    from video_bgm.synthetic import write_test_audio

    detect_cuts(cut_video)
    capfd.readouterr()
    write_test_audio(tmp_path / "after.m4a", 1.0)  # an AAC encode: FFmpeg logs "Qavg" at info level
    write_test_video(tmp_path / "after.mp4", duration=0.5)
    err = capfd.readouterr().err
    assert "[aac" not in err and "[libx264" not in err, err[:300]
