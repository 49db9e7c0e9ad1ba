"""ImageBind score (video_bgm.evaluation.imagebind).

The network is the ``imagebind`` package's own ``ImageBindModel``; these tests need that package
(``pip install --no-deps imagebind-unofficial==0.1.1`` with ftfy, iopath, einops, timm, regex) and skip
without it. The stand-in is ``ImageBindModel`` built with small widths and one block per modality
(same preprocessors, patch sizes, heads and postprocessors as ``imagebind_huge``), with random
weights saved where the real weight file goes.

The comparison with ``imagebind.data``'s own functions needs pytorchvideo and decord as well:
pytorchvideo from git as ImageBind pins it (28fe037 until 2025, 6cdc929 since: the same clip sampler
and transforms); 0.1.5 from PyPI predates the sampler's fix of 2022-04-28 and does not import beside
torchvision >= 0.17. It skips without them; ``pkg_resources`` (gone from setuptools >= 81) is stood
in for (imagebind.data uses it only to find its BPE vocabulary). torchaudio
>= 2.9 loads audio only through torchcodec: the reference's ``torchaudio.load`` is given a WAV read by
Python's ``wave`` module (what torchaudio returns for 16-bit PCM: int16 / 32768), so the comparison
covers everything after decoding.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import time
import types
import wave

import numpy as np
import pytest
import torch

from video_bgm import media
from video_bgm.errors import ModelError
from video_bgm.evaluation import imagebind as ib
from video_bgm.evaluation import weights
from video_bgm.synthetic import write_test_video

from conftest import require_reference
from reference_networks import IMAGEBIND_SMALL, save_imagebind_stand_in

SMALL = IMAGEBIND_SMALL


@pytest.fixture(scope="module")
def package():
    """``imagebind.models.imagebind_model``, or a skip naming the install line."""
    try:
        return ib.model_module()
    except ModelError as err:
        require_reference(f"the imagebind package ({err})", False)


@pytest.fixture
def stand_in(package, monkeypatch, tmp_path):
    """A small ImageBindModel in place of imagebind_huge, its random weights in a fake torch hub cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return save_imagebind_stand_in(monkeypatch)


@pytest.fixture(scope="module")
def portrait(tmp_path_factory):
    """7 s of 64x96 (portrait) video at 29.97 fps with a mono 22.05 kHz track: other crops, rates and clip spacing
    (decord, the reference's reader, fails on frames 48 pixels wide)."""
    path = tmp_path_factory.mktemp("ib-media") / "portrait.mp4"
    return write_test_video(path, duration=7.0, fps=30000 / 1001, size=(64, 96), audio_rate=22050, audio_channels=1)


@pytest.fixture(scope="module")
def music_wav(tmp_path_factory):
    """3.2 s of stereo noise and a tone at 44.1 kHz with a DC offset, as 16-bit PCM."""
    rng = np.random.default_rng(0)
    t = np.arange(int(3.2 * 44100)) / 44100
    audio = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * rng.standard_normal(len(t))]) + 0.05
    path = tmp_path_factory.mktemp("ib-audio") / "music.wav"
    media.write_wav(path, np.clip(audio, -1, 1).astype(np.float32), 44100)
    return path


# ---------------------------------------------------------------------------------------------
# The sampler (no package needed)


def test_clip_times_follow_the_constant_clips_sampler():
    assert ib.clip_times(10.0, 5) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    starts = [float(s) for s, _ in ib.clip_times(3.0, 5)]
    assert starts == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert ib.clip_times(1.5, 3) == [(0, 2)] * 3  # shorter than a clip: every clip at 0, ending past the end
    # decord's frames of a clip: [ceil(fps * start), ceil(fps * end)), first and last kept
    assert ib.frame_indices(3.0, 10.0, 30)[1] == [3, 22]


# ---------------------------------------------------------------------------------------------
# End to end through the stand-in


def test_score_end_to_end_deterministic_and_cached(stand_in, clip_3s, tmp_path):
    scorer = ib.ImageBindScorer(cache_dir=tmp_path / "cache")
    video, audio = scorer.embed_video(clip_3s, 3.0), scorer.embed_audio(clip_3s, 3.0)
    assert video.shape == audio.shape == (SMALL["out_embed_dim"],) and video.dtype == np.float32
    score = scorer.score(video, audio)
    assert -1.0 <= score <= 1.0 and np.isfinite(score)
    assert scorer.computed == 2
    assert scorer.embed_video(clip_3s, 3.0) is video and scorer.computed == 2  # in memory

    again = ib.ImageBindScorer(cache_dir=tmp_path / "cache")  # from disk: the network is never loaded
    assert np.array_equal(again.embed_video(clip_3s, 3.0), video)
    assert np.array_equal(again.embed_audio(clip_3s, 3.0), audio)
    assert again.computed == 0 and again._network is None
    assert (tmp_path / "cache" / "embeddings").is_dir()

    fresh = ib.ImageBindScorer()  # no cache: computed again, the same numbers
    assert np.array_equal(fresh.embed_video(clip_3s, 3.0), video)
    assert fresh.score(fresh.embed_video(clip_3s, 3.0), fresh.embed_audio(clip_3s, 3.0)) == score
    assert fresh.computed == 2
    # a different span is a different embedding (and cache entry)
    assert fresh.embed_audio(clip_3s, 1.0).shape == audio.shape and fresh.computed == 3
    assert set(fresh.settings()) == {"kind", "weights", "vision", "audio"}


def test_network_output_equals_the_package_forward(stand_in, package, clip_3s, portrait):
    scorer = ib.ImageBindScorer()
    reference = package.ImageBindModel(**SMALL)
    reference.load_state_dict(stand_in)
    reference.eval()
    for path in (clip_3s, portrait):
        vision, audio = ib.video_input(path), ib.audio_input(path)
        assert vision.shape == (15, 3, 2, 224, 224) and audio.shape == (3, 1, 128, 204)
        with torch.no_grad():
            out = reference({package.ModalityType.VISION: vision[None], package.ModalityType.AUDIO: audio[None]})
        np.testing.assert_allclose(scorer.embed_video(path), out["vision"][0].numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(scorer.embed_audio(path), out["audio"][0].numpy(), rtol=0, atol=1e-5)
    # only the vision and audio branches are kept
    assert set(scorer.network.modality_trunks.keys()) == {"vision", "audio"}


def test_score_is_torch_cosine_similarity():
    rng = np.random.default_rng(1)
    v, a = rng.standard_normal(16).astype(np.float32), 20 * rng.standard_normal(16).astype(np.float32)
    expected = torch.nn.CosineSimilarity(dim=1, eps=1e-6)(torch.from_numpy(v)[None], torch.from_numpy(a)[None])
    assert ib.ImageBindScorer.score(v, a) == pytest.approx(float(expected[0]), abs=1e-7)
    assert ib.ImageBindScorer.score(v, v) == pytest.approx(1.0, abs=1e-6)
    assert ib.ImageBindScorer.score(v, -v) == pytest.approx(-1.0, abs=1e-6)
    # music moved away from the video's embedding scores lower, step by step
    other = rng.standard_normal(16).astype(np.float32)
    scores = [ib.ImageBindScorer.score(v, (1 - t) * v + t * other) for t in np.linspace(0, 1, 6)]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1] + 0.5


# ---------------------------------------------------------------------------------------------
# Preprocessing against imagebind.data


def _read_wav(path, *args, **kwargs):
    """What torchaudio.load returns for a 16-bit PCM WAV: float32 [channels, samples] = int16 / 32768, its rate."""
    with wave.open(str(path)) as w:
        channels, rate = w.getnchannels(), w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, channels).T
    return torch.from_numpy(np.ascontiguousarray(data.astype(np.float32) / 32768.0)), rate


@pytest.fixture
def reference_data(package, monkeypatch):
    """``imagebind.data``, imported with stand-ins for what current setuptools/torchvision/torchaudio lack."""
    for needed in ("pytorchvideo", "decord"):
        if importlib.util.find_spec(needed) is None:
            pytest.skip(f"comparing with imagebind.data needs {needed} "
                        "(pip install decord 'pytorchvideo @ git+https://github.com/facebookresearch/pytorchvideo')")
    if importlib.util.find_spec("pkg_resources") is None:  # setuptools >= 81
        stub = types.ModuleType("pkg_resources")
        stub.resource_filename = lambda package_name, name: os.path.join(
            os.path.dirname(importlib.util.find_spec(package_name).origin), name)
        monkeypatch.setitem(sys.modules, "pkg_resources", stub)
    try:
        from pytorchvideo.data.encoded_video import EncodedVideo
    except ImportError as err:  # pytorchvideo 0.1.5 imports torchvision.transforms.functional_tensor (gone in 0.17)
        pytest.skip(f"pytorchvideo does not import here ({err}): ImageBind pins a git commit")
    if "other_args" not in inspect.signature(EncodedVideo.from_path).parameters:
        pytest.skip("pytorchvideo 0.1.5 (PyPI) is older than the commit ImageBind pins (its clip sampler spaces "
                    "clips differently and its EncodedVideo takes no sample_rate)")
    import torchaudio

    monkeypatch.setattr(torchaudio, "load", _read_wav)
    return importlib.import_module("imagebind.data")


def test_video_preprocessing_equals_imagebind_data(reference_data, clip_3s, portrait, tmp_path):
    rotated = write_test_video(tmp_path / "rotated.mp4", duration=2.5, fps=25, size=(128, 64), rotation=90)
    for path in (clip_3s, portrait, rotated):
        expected = reference_data.load_and_transform_video_data([str(path)], "cpu")[0]
        assert torch.equal(ib.video_input(path), expected)


def test_audio_preprocessing_equals_imagebind_data(reference_data, music_wav, tmp_path):
    expected = reference_data.load_and_transform_audio_data([str(music_wav)], "cpu")[0]
    assert torch.equal(ib.audio_input(music_wav), expected)
    # a mono file at 16 kHz, long enough for clips that do not overlap
    mono = tmp_path / "mono.wav"
    rng = np.random.default_rng(2)
    media.write_wav(mono, (0.1 * rng.standard_normal(16000 * 9)).astype(np.float32), 16000)
    expected = reference_data.load_and_transform_audio_data([str(mono)], "cpu")[0]
    assert torch.equal(ib.audio_input(mono), expected)


# ---------------------------------------------------------------------------------------------
# Offline


def test_offline_is_one_line_naming_the_weight_file(monkeypatch, tmp_path, clip_3s):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not ib.ImageBindScorer.is_cached()
    started = time.monotonic()
    with pytest.raises(ModelError) as info:
        ib.ImageBindScorer()
    message = str(info.value)
    assert "\n" not in message and "imagebind_huge.pth" in message and ib.URL in message
    assert time.monotonic() - started < 5


def test_missing_package_is_one_line_with_the_install_command(monkeypatch):
    for name in [n for n in sys.modules if n == "imagebind" or n.startswith("imagebind.")]:
        monkeypatch.delitem(sys.modules, name)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "imagebind" else real_find_spec(name, *args))
    with pytest.raises(ModelError) as info:
        ib.model_module()
    assert "\n" not in str(info.value) and "pip install --no-deps imagebind-unofficial" in str(info.value)


# ---------------------------------------------------------------------------------------------
# The real architecture


@pytest.mark.slow
def test_real_architecture_builds_and_runs(package, clip_3s, monkeypatch, tmp_path):
    """imagebind_huge (random weights: the real ones cannot be fetched in tests) through the scorer, all 15
    vision views and 3 audio views: about 60 s on 2 CPU cores (build 7-25 s, vision 52 s, audio 2 s)."""
    torch.manual_seed(0)
    model = package.imagebind_huge(pretrained=False)
    assert sum(p.numel() for p in model.parameters()) == 1_200_781_057  # all six modalities, as the weight file
    # the weight file is the network's own tensors: load_network's strict load, trimming and eval run as they are
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights.cached_path(ib.URL).parent.mkdir(parents=True)
    weights.cached_path(ib.URL).write_bytes(b"stand-in")
    monkeypatch.setattr(package, "imagebind_huge", lambda pretrained=False: model)
    monkeypatch.setattr(weights, "load_state_dict", lambda url, what, key=None: model.state_dict())
    scorer = ib.ImageBindScorer()
    video, audio = scorer.embed_video(clip_3s), scorer.embed_audio(clip_3s)
    assert video.shape == audio.shape == (1024,)
    assert 0 < np.linalg.norm(audio) <= 20.0 + 1e-3  # the mean of unit vectors scaled by 20
    assert -1.0 <= scorer.score(video, audio) <= 1.0
    assert set(scorer.network.modality_trunks.keys()) == {"vision", "audio"}
