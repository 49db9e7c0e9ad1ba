"""The motion channel: frame differences at the video's own rate, pooled per sampled frame, and a
model with motion end to end (cache, training input, generation)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from video_bgm import media, motion
from video_bgm.config import GenerationParams, VideoModelConfig
from video_bgm.data.cache import FeatureCache, frames_key
from video_bgm.pipeline import VideoBGM
from video_bgm.synthetic import MOTION_SPEEDS, write_motion_clips, write_test_video
from video_bgm.temporal import TemporalTransformer


def test_meter_pools_each_interval():
    meter = motion.MotionMeter(np.array([1.0, 2.0]), 1.0, width=64, height=32)
    assert meter.size == (64, 32)
    grey = lambda level: np.full((32, 64), level, dtype=np.uint8)
    for start, level in ((0.5, 0), (1.0, 255), (1.5, 0), (2.0, 0), (2.5, 51)):
        meter.add(start, grey(level))
    assert not meter.done
    meter.add(3.0, grey(51))  # closes the last interval, (2, 3]
    assert meter.done
    meter.add(3.5, grey(255))  # past it: not counted
    # (0.5 -> 1.0) ends at the first sampled frame, before its interval (1, 2], which holds
    # (1.0 -> 1.5), energy 1, and (1.5 -> 2.0), 0; (2, 3] holds 0.04 and 0.
    expected = np.log1p(np.array([[0.5, 1.0], [0.02, 0.04]]) / motion.UNIT)
    np.testing.assert_allclose(meter.channels().numpy(), expected, rtol=1e-5)
    assert motion.append(torch.zeros(2, 3), meter.channels()).shape == (2, 3 + motion.CHANNELS)
    with pytest.raises(ValueError, match="motion for 2"):
        motion.append(torch.zeros(3, 3), meter.channels())


def test_faster_motion_reads_higher_and_frames_are_unchanged(tmp_path):
    folder = write_motion_clips(tmp_path, 4, duration=2.0, fps=10, size=(64, 32))
    levels = []
    for i in range(len(MOTION_SPEEDS)):
        video = folder / "videos" / f"motion{i:02d}.mp4"
        frames, times, channels = media.sample_frames_and_motion(video, 2.0)
        plain, plain_times = media.sample_frames(video, 2.0)
        assert torch.equal(frames, plain) and np.array_equal(times, plain_times)
        assert channels.shape == (len(times), motion.CHANNELS) and channels.dtype == torch.float32
        levels.append(channels[:, 0].mean().item())
    assert levels == sorted(levels) and levels[0] > 0, levels  # the bar's speed orders the channel
    still = write_test_video(tmp_path / "still.mp4", duration=2.0, fps=10, size=(64, 32), color_fn=lambda t: (9, 9, 9))
    _, _, channels = media.sample_frames_and_motion(still, 2.0)
    assert channels.abs().max() < 0.05
    # A window of the clip: its own intervals only.
    _, times, part = media.sample_frames_and_motion(folder / "videos" / "motion03.mp4", 2.0, start=0.5, duration=1.0)
    assert times.tolist() == [0.5, 1.0] and part.shape == (2, motion.CHANNELS) and (part[:, 0] > 0).all()


def test_cache_key_and_encoder_input(tmp_path, tiny_model):
    from types import SimpleNamespace

    plain, moving = VideoModelConfig(), VideoModelConfig(motion=True)
    assert "motion" not in frames_key(plain)  # models without motion keep their cache folders
    musicgen = SimpleNamespace(audio_channels=1, num_codebooks=4)
    a, b = FeatureCache(tmp_path, plain, musicgen), FeatureCache(tmp_path, moving, musicgen)
    assert a.frames_dir != b.frames_dir and a.codes_dir == b.codes_dir
    assert json.loads((b.frames_dir / "settings.json").read_text())["motion"]["channels"] == motion.CHANNELS
    config = dataclasses.replace(tiny_model.config, motion=True)
    temporal = TemporalTransformer.for_model(config)
    assert temporal.input_proj.in_features == config.temporal.feature_dim + motion.CHANNELS


def test_a_model_with_motion_generates_from_the_video(tiny_model, tmp_path):
    config = dataclasses.replace(tiny_model.config, motion=True)
    torch.manual_seed(0)
    model = VideoBGM(config, tiny_model.frame_encoder, TemporalTransformer.for_model(config).eval(), tiny_model.musicgen)
    folder = write_motion_clips(tmp_path, 4, duration=2.0, fps=10)
    result = model.generate(folder / "videos" / "motion00.mp4", GenerationParams(seed=1, top_k=20))
    assert result.audio.shape[1] == pytest.approx(2.0 * model.sample_rate, abs=1)
    reloaded = VideoBGM.from_pretrained(model.save_pretrained(tmp_path / "m"), device="cpu")
    assert reloaded.config.motion and reloaded.temporal.input_proj.in_features == model.temporal.input_proj.in_features


def test_grey_grid_reads_luma_and_converts_other_formats():
    import av

    rng = np.random.default_rng(0)
    rgb = np.repeat(np.repeat(rng.integers(0, 256, size=(9, 16, 3), dtype=np.uint8), 8, axis=0), 8, axis=1)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")  # 128 x 72: converted to grey
    yuv = frame.reformat(format="yuv420p")  # the luma plane, read in place
    a, b = media._grey_grid(frame, (16, 9)), media._grey_grid(yuv, (16, 9))
    assert a.shape == b.shape == (9, 16) and a.dtype == b.dtype == np.uint8
    # one point per 8x8 block: each grid point reads its own block's grey level, in both paths
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 3
    assert len(np.unique(a)) > 50
