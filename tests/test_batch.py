"""Folder mode, variations, and the finished outputs (loudness, the original sound kept)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from conftest import load_script
from video_bgm import batch, loudness, media
from video_bgm.cli import run
from video_bgm.config import GenerationParams
from video_bgm.loudness import Mix
from video_bgm.synthetic import write_test_video

generate_cli = load_script("code/inference/generate.py")


def generate(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        run(lambda: generate_cli.main([str(a) for a in argv]), "generate.py")
    return exit_info.value.code, out.getvalue(), err.getvalue()


@pytest.fixture()
def clips(tmp_path):
    """a.mp4, b_bad.mp4 (not a video), c.mkv without sound, sub/d.webm; sorted order puts the bad one in the middle."""
    root = tmp_path / "clips"
    (root / "sub").mkdir(parents=True)
    write_test_video(root / "a.mp4", duration=1.0, fps=5)
    (root / "b_bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    write_test_video(root / "c.mkv", duration=1.0, fps=5, audio=False)
    write_test_video(root / "sub" / "d.webm", duration=1.0, fps=5, codec="libvpx-vp9")
    (root / "notes.txt").write_text("not a video, not picked up")
    return root


def test_variation_paths_and_mirrored_outputs(tmp_path):
    assert batch.variation_paths(tmp_path / "x.mp4", 1) == [tmp_path / "x.mp4"]
    assert batch.variation_paths(tmp_path / "x.mp4", 3) == [tmp_path / f"x_{i}.mp4" for i in (1, 2, 3)]
    root, out = tmp_path / "in", tmp_path / "out"
    assert batch.mirrored_output(root / "s" / "a.mov", root, out) == out / "s" / "a.mov"
    assert batch.mirrored_output(root / "a.avi", root, out) == out / "a.avi.mp4"  # never collides with a.mp4


def test_folder_with_a_corrupt_file_in_the_middle(tiny_model, clips, tmp_path):
    out = tmp_path / "out"
    lines = []
    summary = batch.run_folder(tiny_model, clips, out, GenerationParams(seed=5, top_k=50), Mix(), variations=2,
                               recursive=True, log=lines.append)
    assert [f for f, _ in summary.failed] == [clips / "b_bad.mp4"]
    assert "b_bad.mp4" in summary.failed[0][1]
    written = sorted(str(w.video.relative_to(out)) for w in summary.written)
    assert written == ["a_1.mp4", "a_2.mp4", "c_1.mkv", "c_2.mkv", "sub/d_1.webm", "sub/d_2.webm"]
    assert [w.seed for w in summary.written[:2]] == [5, 6]
    for w in summary.written:
        assert w.video.is_file() and w.wav.is_file()
        assert media.probe_video(w.video).has_audio
    assert summary.line() == "6 written, 0 already done (skipped), 1 failed"
    assert any("FAILED" in line and "b_bad.mp4" in line for line in lines)

    # again: finished outputs are skipped; a missing one is made again
    (out / "a_2.mp4").unlink()
    again = batch.run_folder(tiny_model, clips, out, GenerationParams(seed=5, top_k=50), Mix(), variations=2,
                             recursive=True, log=lines.append)
    assert [str(w.video.relative_to(out)) for w in again.written] == ["a_2.mp4"]
    assert again.written[0].seed == 6  # the same seed as its first try: the same take
    assert len(again.skipped) == 5 and len(again.failed) == 1

    # without --recursive the subfolder is not visited
    flat = batch.run_folder(tiny_model, clips, tmp_path / "flat", GenerationParams(seed=5, top_k=50), Mix(),
                            log=lines.append)
    assert sorted(w.video.name for w in flat.written) == ["a.mp4", "c.mkv"]


def test_cli_folder_mode_summary_and_exit_code(tiny_bundle, clips, tmp_path):
    code, out, err = generate(clips, "--model", tiny_bundle["video-encoder"], "--out", tmp_path / "o",
                              "--seed", 1, "--top-k", 50, "--quiet")
    assert code == 1, err
    assert "2 written, 0 already done (skipped), 1 failed" in out and "b_bad.mp4" in out
    assert (tmp_path / "o" / "a.mp4").is_file() and not (tmp_path / "o" / "sub").exists()
    code, out, err = generate(tmp_path / "o", "--model", tiny_bundle["video-encoder"], "--out", tmp_path / "x.mp4")
    assert code == 1 and "--out is a folder" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = generate(empty, "--model", tiny_bundle["video-encoder"], "--out", tmp_path / "e")
    assert code == 1 and "no videos found" in err


def test_outputs_reach_the_loudness_target(tiny_model, tmp_path):
    video = write_test_video(tmp_path / "v.mp4", duration=3.0, fps=5, audio=False)
    info = media.probe_video(video)
    [w] = batch.write_music(tiny_model, video, info, GenerationParams(seed=2, top_k=50), Mix(loudness=-20.0),
                            [tmp_path / "out.mp4"])
    music, rate = batch.read_wav(w.wav)
    assert abs(loudness.integrated_loudness(music, rate) - (-20.0)) < 1.0
    muxed = media.decode_audio(w.video, rate, music.shape[0])
    assert abs(loudness.integrated_loudness(muxed, rate) - (-20.0)) < 1.0
    assert np.abs(music[:, :10]).max() < 0.05  # faded in


def tone_level(audio, rate, freq):
    """Amplitude of the ``freq`` Hz component (a least-squares fit of a sine and a cosine)."""
    t = np.arange(audio.shape[-1]) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, audio.mean(axis=0), rcond=None)
    return float(np.hypot(*coef))


def test_keep_original_audio_mixes_the_videos_sound_under_the_music(tiny_bundle, tmp_path):
    video = write_test_video(tmp_path / "vlog.mp4", duration=3.0, fps=5, audio_freq=440.0)
    code, out, err = generate(video, "--model", tiny_bundle["video-encoder"], "--out", tmp_path / "mix.mp4",
                              "--keep-original-audio", -12, "--seed", 3, "--top-k", 50, "--quiet")
    assert code == 0, err
    rate = 32000
    original = media.decode_audio(video, rate, 1)
    mixed = media.decode_audio(tmp_path / "mix.mp4", rate, 1)[:, : original.shape[1]]
    music, _ = batch.read_wav(tmp_path / "mix.wav")
    # the tone is in the mix, clearly, and not in the music alone (the WAV)
    middle = slice(rate // 2, original.shape[1] - rate // 2)  # away from fades and AAC edges
    assert tone_level(mixed[:, middle], rate, 440.0) > 0.3 * tone_level(original[:, middle], rate, 440.0)
    assert tone_level(music[:, middle], rate, 440.0) < 0.1 * tone_level(mixed[:, middle], rate, 440.0)
    assert abs(loudness.integrated_loudness(mixed, rate) - loudness.DEFAULT_LOUDNESS) < 1.0

    silent = write_test_video(tmp_path / "silent.mp4", duration=1.0, fps=5, audio=False)
    code, out, err = generate(silent, "--model", tiny_bundle["video-encoder"], "--out", tmp_path / "s.mp4",
                              "--keep-original-audio", -12, "--seed", 3, "--quiet")
    assert code == 0 and "no sound of its own" in out
