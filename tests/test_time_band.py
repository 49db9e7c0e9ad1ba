"""Time-local conditioning: the band's rule, that the mask reaches the decoder (in teacher forcing and
in generation alike), that an unbounded band is MusicGen's global attention exactly, and windows."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from video_bgm import media, windows
from video_bgm.config import GenerationParams, VideoModelConfig
from video_bgm.musicgen import MusicGen
from video_bgm.pipeline import VideoBGM
from video_bgm.random_models import musicgen_config, random_musicgen
from video_bgm.synthetic import write_test_video
from video_bgm.time_band import TimeBand

RATE = 50.0  # code frames per second of the tiny MusicGen


@pytest.fixture(scope="module")
def mg():
    return MusicGen(random_musicgen(musicgen_config("tiny"), seed=2), fast=False)


def inputs(mg, rows=3, tokens=8, frames=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    condition = torch.randn(rows, tokens, mg.decoder_dim, generator=g)
    mask = torch.ones(rows, tokens, dtype=torch.bool)
    codes = torch.randint(0, mg.model.config.decoder.vocab_size, (rows, mg.num_codebooks, frames), generator=g)
    return condition, mask, codes


def test_band_rule():
    # 4 frames of 0.5 s at 0, 0.5, 1, 1.5 s, then 2 global (text) tokens; band +-0.25 s.
    band = TimeBand.for_frames([0.0, 0.5, 1.0, 1.5], 6, 0.5, 0.25)
    mask = torch.tensor([[True] * 6, [True, True, False, False, True, False], [False] * 6])
    positions = torch.tensor([0, 30, 200])  # 0 s, 0.6 s, 4 s
    allowed = band.allowed(mask, positions, RATE)
    assert allowed[0].tolist() == [
        [True, False, False, False, True, True],   # 0 s: its own frame (the next starts 0.5 s away) + text
        [True, True, False, False, True, True],    # 0.6 s: inside frame 1, 0.1 s past frame 0's end; frame 2 0.4 s off
        [False, False, False, True, True, True],   # 4 s, past the end: the nearest (last) frame only
    ]
    # Padded tokens never; the nearest *real* frame is always there; the null condition stays empty.
    assert allowed[1].tolist() == [[True, False, False, False, True, False], [True, True, False, False, True, False],
                                   [False, True, False, False, True, False]]
    assert not allowed[2].any()
    shifted = band.shifted(1.0).allowed(mask[:1], torch.tensor([50]), RATE)  # 1 s is now frame 0's start
    assert shifted[0, 0].tolist() == [True, False, False, False, True, True]
    with pytest.raises(ValueError, match="token times"):
        band.allowed(mask[:, :5], positions, RATE)


def test_unbounded_band_is_global_attention_exactly(mg):
    condition, mask, codes = inputs(mg)
    mask[1, 5:] = False
    mask[2] = False  # MusicGen's null condition
    band = TimeBand.for_frames(torch.arange(6) * 0.25, 8, 0.25, math.inf)
    assert torch.equal(mg.frame_losses(condition, mask, codes), mg.frame_losses(condition, mask, codes, band=band))
    assert torch.equal(mg.loss(condition, mask, codes), mg.loss(condition, mask, codes, band=band))
    same = [mg.generate_codes(condition[:2], mask[:2], 30, top_k=1, band=b, prompt=codes[:2, :, :5])
            for b in (None, band)]
    assert torch.equal(*same)


def test_the_mask_reaches_the_decoder_and_keeps_far_frames_out(mg):
    """With a 0.2 s band, changing the frame at [0.8, 1.2) s leaves the music before 0.6 s as it was
    (later music sees the change through the decoder's causal self-attention too)."""
    condition, mask, codes = inputs(mg, tokens=6, frames=100)
    band = TimeBand.for_frames(torch.arange(6) * 0.4, 6, 0.4, 0.2)  # frames of 0.4 s at 0, 0.4, ..., 2 s
    other = condition.clone()
    other[:, 2] = torch.randn_like(other[:, 2])  # the frame covering [0.8, 1.2) s
    base, changed = (mg.frame_losses(c, mask, codes, band=band) for c in (condition, other))
    times = torch.arange(100) / RATE
    delays = (mg.num_codebooks - 1) / RATE  # a frame's last codebook is predicted this much later
    far = times < 0.6 - delays - 0.02
    assert torch.equal(base[:, far], changed[:, far])
    near = (times >= 0.8) & (times < 1.2)
    assert (base[:, near] - changed[:, near]).abs().min() > 0
    # Global attention sees the change everywhere.
    glob = [mg.frame_losses(c, mask, codes) for c in (condition, other)]
    assert (glob[0][:, far] != glob[1][:, far]).all()


def test_generation_follows_the_band_as_teacher_forcing_does(mg):
    """Greedy codes sampled step by step with a band are the argmax of the same band's teacher-forced
    logits: the per-position mask reaches every step (prompt included)."""
    condition, mask, codes = inputs(mg, rows=2, tokens=6)
    band = TimeBand.for_frames(torch.arange(6) * 0.2, 6, 0.2, 0.1)
    prompt = codes[..., :10]
    new = mg.generate_codes(condition, mask, 30, guidance_scale=1.0, top_k=1, prompt=prompt, band=band)
    whole = torch.cat([prompt, new], dim=2)
    out, _ = mg._teacher_forced(condition, mask, whole, None, band)
    K = mg.num_codebooks
    logits = out.logits.reshape(2, K, -1, out.logits.shape[-1])
    predicted = torch.stack([logits[:, k, k:k + whole.shape[2]].argmax(-1) for k in range(K)], dim=1)
    assert torch.equal(predicted[..., 10:], new)
    unbanded = mg.generate_codes(condition, mask, 30, guidance_scale=1.0, top_k=1, prompt=prompt)
    assert not torch.equal(unbanded, new)


def test_static_stepper_takes_the_band_per_step(mg):
    condition, mask, _ = inputs(mg, rows=2, tokens=6)
    band = TimeBand.for_frames(torch.arange(6) * 0.2, 6, 0.2, 0.1)
    eager = mg.generate_codes(condition, mask, 25, top_k=1, band=band)
    mg.static_cache, mg.compile_step = True, False
    try:
        static = [mg.generate_codes(condition, mask, 25, top_k=1, band=band) for _ in range(2)]  # kept and restarted
    finally:
        mg.static_cache, mg._static_steppers = None, {}
    assert torch.equal(static[0], eager) and torch.equal(static[1], eager)


def test_config_checks_the_band():
    VideoModelConfig(attention_band=2.0).validate()
    with pytest.raises(ValueError, match="attention_band: must be >= 0"):
        VideoModelConfig(attention_band=-1.0).validate()
    with pytest.raises(ValueError, match="num_frames 0 and temporal.num_tokens 0"):
        VideoModelConfig(attention_band=2.0, num_frames=30).validate()


def banded(model, seconds=1.0):
    return VideoBGM(dataclasses.replace(model.config, attention_band=seconds), model.frame_encoder, model.temporal,
                    model.musicgen)


def test_windows_give_each_window_its_frames_times(tiny_model, tmp_path, monkeypatch):
    """Scene windows are conditioned on their new part but start at their prompt: the band's token
    times are measured from the prompt's start, so the first frame sits ``overlap`` s in."""
    video = write_test_video(tmp_path / "v.mp4", duration=6.0, fps=4, size=(32, 32))
    model = banded(tiny_model)
    bands = []
    original = model.musicgen.generate_codes

    def recording(condition, mask, num_frames, band=None, **kwargs):
        bands.append((band, condition.shape[1], kwargs.get("prompt")))
        return original(condition, mask, num_frames, band=band, **kwargs)

    monkeypatch.setattr(model.musicgen, "generate_codes", recording)
    params = GenerationParams(seed=1, top_k=20, window=3.0, overlap=1.0, follow_cuts=True, cuts=[2.5],
                              cut_min_seconds=2.0)
    result = model.generate(video, params)
    assert result.audio.shape[1] == 6 * model.sample_rate
    fps = model.config.fps
    first, second = bands[0], bands[1]
    assert first[2] is None and torch.allclose(first[0].starts[:3], torch.arange(3, dtype=torch.float64) / fps)
    assert second[2] is not None and second[0].starts[0].item() == pytest.approx(1.0)  # the overlap
    assert len(first[0].starts) == first[1] and first[0].seconds == 1.0


def test_band_changes_what_a_model_makes_and_its_losses(tiny_model, tmp_path):
    video = write_test_video(tmp_path / "v.mp4", duration=4.0, fps=4, size=(32, 32),
                             color_fn=lambda t: (255, 0, 0) if t < 2 else (0, 0, 255))
    params = GenerationParams(seed=4, top_k=1)
    local, plain = banded(tiny_model, 0.5).generate(video, params), tiny_model.generate(video, params)
    assert local.audio.shape == plain.audio.shape and not (local.audio == plain.audio).all()
    band = banded(tiny_model, 0.5).segment_band(4, 6)
    assert torch.allclose(band.starts[:4], torch.arange(4, dtype=torch.float64) / tiny_model.config.fps)
    assert torch.isnan(band.starts[4:]).all() and tiny_model.segment_band(4, 6) is None
