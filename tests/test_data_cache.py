"""The feature cache: computed once, recomputed only for what changed, unreadable clips skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training_helpers import paired_clips, tiny_config, training_main
from video_bgm import media
from video_bgm.synthetic import write_test_video, write_text_file


def test_cache_is_computed_once_and_only_what_changed_is_recomputed(tmp_path, tiny_bundle, clips12, monkeypatch):
    config = tiny_config(tmp_path, tiny_bundle, clips12, max_steps=1, eval_every=1)
    assert training_main("--config", config) == 0
    cache = tmp_path / "cache"
    frames = list((cache / "frames").rglob("*.safetensors"))
    codes = list((cache / "codes").rglob("*.safetensors"))
    assert len(frames) == len(codes) == 12

    calls = {"frames": 0, "audio": 0}
    original_frames, original_audio = media.sample_frames, media.decode_audio

    def count_frames(*a, **k):
        calls["frames"] += 1
        return original_frames(*a, **k)

    def count_audio(*a, **k):
        calls["audio"] += 1
        return original_audio(*a, **k)

    monkeypatch.setattr(media, "sample_frames", count_frames)
    monkeypatch.setattr(media, "decode_audio", count_audio)
    assert training_main("--config", config, "--set", f"output_dir={tmp_path / 'again'}") == 0
    assert calls == {"frames": 0, "audio": 0}, "a second run reads everything from the cache"
    # another frame rate: frames are recomputed, EnCodec codes are reused
    assert training_main("--config", config, "--set", f"output_dir={tmp_path / 'fps'}", "--set", "model.fps=1.0") == 0
    assert calls == {"frames": 12, "audio": 0}
    assert len(list((cache / "frames").rglob("*.safetensors"))) == 24


def test_frames_preprocessed_another_way_are_cached_apart(tmp_path):
    """Features of PIL-resized frames (the thesis's way) are never reused for tensor-resized ones."""
    from types import SimpleNamespace

    from video_bgm.config import FrameEncoderConfig, VideoModelConfig
    from video_bgm.data.cache import FeatureCache

    musicgen = SimpleNamespace(audio_channels=1, num_codebooks=4)

    def cache(preprocessing: str) -> FeatureCache:
        encoder = FrameEncoderConfig(kind="resnet50", name="IMAGENET1K_V2", preprocessing=preprocessing)
        return FeatureCache(tmp_path, VideoModelConfig(frame_encoder=encoder), musicgen)

    tensor, pil = cache("tensor"), cache("pil")
    assert tensor.frames_dir != pil.frames_dir and tensor.codes_dir == pil.codes_dir
    assert json.loads((pil.frames_dir / "settings.json").read_text())["preprocessing"] == "pil"


def test_unreadable_clips_are_reported_once_and_skipped(tmp_path, tiny_bundle, capsys):
    videos = paired_clips(tmp_path / "videos", 8)
    write_text_file(videos / "broken.mp4")
    write_test_video(videos / "silent.mp4", duration=2.0, audio=False)
    config = tiny_config(tmp_path, tiny_bundle, videos, max_steps=2, eval_every=2)
    assert training_main("--config", config) == 0
    err = capsys.readouterr().err
    assert err.count("skipping broken") == 1 and err.count("skipping silent") == 1
    assert "2 clips skipped:" in err and "has no audio stream" in err
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert "broken" not in sum(split.values(), [])


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux's /proc")
def test_a_file_that_cannot_be_read_is_skipped_not_fatal(tmp_path, tiny_bundle, capsys):
    videos = paired_clips(tmp_path / "videos", 8)
    # reading /proc/self/mem from offset 0 fails with EIO, for root too (chmod 000 does not stop root)
    (videos / "unreadable.mp4").symlink_to("/proc/self/mem")
    config = tiny_config(tmp_path, tiny_bundle, videos, max_steps=2, eval_every=2)
    assert training_main("--config", config) == 0
    err = capsys.readouterr().err
    assert err.count("skipping unreadable") == 1 and "cannot read (Input/output error)" in err
    assert "1 clips skipped:" in err
