"""The training objective shared by training and evaluation: batches, conditioning, loss, conditioning gain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from video_bgm.objective import batch_loss, collate, condition_batch, conditioning_losses

CPU = torch.device("cpu")


def items(model, count: int, frames: int = 4, codes: int = 100, caption: str = "") -> list[dict]:
    """Segments as SegmentDataset yields them: random features [Tf, F] and codes [K, Tc], all real."""
    g = torch.Generator().manual_seed(0)
    f_dim, k = model.temporal.config.feature_dim, model.musicgen.num_codebooks
    return [{"features": torch.randn(frames, f_dim, generator=g), "features_mask": torch.ones(frames, dtype=torch.bool),
             "codes": torch.randint(0, 32, (k, codes), generator=g), "codes_mask": torch.ones(codes, dtype=torch.bool),
             "caption": caption, "index": i} for i in range(count)]


def test_the_gain_is_the_shuffled_loss_minus_the_matched_loss(tiny_model):
    dataset = items(tiny_model, 3)
    got = conditioning_losses(tiny_model, dataset, batch_size=2, device=CPU)
    tiny_model.temporal.eval()
    batch = collate(dataset)
    with torch.no_grad():
        matched = batch_loss(tiny_model, batch, CPU).item()
        # clip i's music with clip i+1's video: a derangement, every clip gets another's video
        shuffled = batch_loss(tiny_model, batch, CPU, features=batch["features"].roll(-1, dims=0)).item()
        null = batch_loss(tiny_model, batch, CPU, null=True).item()
    assert got["clips"] == 3
    assert got["loss"] == pytest.approx(matched, rel=1e-5) and got["null_loss"] == pytest.approx(null, rel=1e-5)
    assert got["shuffled_loss"] == pytest.approx(shuffled, rel=1e-5) and shuffled != pytest.approx(matched)
    assert got["conditioning_gain"] == pytest.approx(got["shuffled_loss"] - got["loss"])


def test_one_clip_has_no_gain(tiny_model):
    got = conditioning_losses(tiny_model, items(tiny_model, 1), batch_size=4, device=CPU)
    assert "conditioning_gain" not in got and "shuffled_loss" not in got and got["clips"] == 1


def test_captions_join_the_video_tokens_and_null_masks_everything(tiny_model):
    plain = collate(items(tiny_model, 2))
    captioned = collate(items(tiny_model, 2, caption="calm piano"))
    with torch.no_grad():
        condition, mask, _ = condition_batch(tiny_model, plain, CPU)
        with_text, text_mask, _ = condition_batch(tiny_model, captioned, CPU)
        _, null_mask, _ = condition_batch(tiny_model, captioned, CPU, null=True)
    assert with_text.shape[1] > condition.shape[1] and text_mask.shape == with_text.shape[:2]
    assert mask.all() and not null_mask.any()


def test_the_per_frame_loss_averages_to_the_clip_loss_with_padding(tiny_model):
    from video_bgm.objective import frame_losses

    batch = collate(items(tiny_model, 3, codes=60))
    batch["codes_mask"][1, 45:] = False  # a shorter clip: its padding is neither counted nor scored
    with torch.no_grad():
        per_frame = frame_losses(tiny_model, batch, CPU)
        clip = batch_loss(tiny_model, batch, CPU).item()
    valid = batch["codes_mask"].float()
    assert per_frame.shape == (3, 60) and (per_frame[1, 45:] == 0).all()
    assert ((per_frame * valid).sum() / valid.sum()).item() == pytest.approx(clip, rel=1e-5)


def test_the_per_frame_loss_of_a_stereo_model(tiny_bundle):
    from video_bgm.objective import frame_losses
    from video_bgm.pipeline import VideoBGM

    stereo = VideoBGM.from_pretrained(tiny_bundle["video-encoder-stereo"], device="cpu")
    batch = collate(items(stereo, 2, codes=40))
    with torch.no_grad():
        per_frame = frame_losses(stereo, batch, CPU)
        assert per_frame.mean().item() == pytest.approx(batch_loss(stereo, batch, CPU).item(), rel=1e-5)


def test_swap_halves_plays_the_second_half_first_within_the_real_frames():
    from video_bgm.objective import swap_halves

    features = torch.arange(2 * 5, dtype=torch.float).reshape(2, 5, 1)
    mask = torch.tensor([[True] * 5, [True] * 4 + [False]])
    swapped = swap_halves(features, mask)[..., 0]
    assert swapped.tolist() == [[2, 3, 4, 0, 1], [7, 8, 5, 6, 9]]


def test_the_order_gain_and_the_timeline(tiny_model):
    from video_bgm.objective import swap_halves

    dataset = items(tiny_model, 3, frames=6, codes=100)
    got = conditioning_losses(tiny_model, dataset, batch_size=2, device=CPU, timeline=True)
    batch = collate(dataset)
    with torch.no_grad():
        swapped = batch_loss(tiny_model, batch, CPU, features=swap_halves(batch["features"], batch["features_mask"]))
    assert got["order_loss"] == pytest.approx(swapped.item(), rel=1e-5) and got["order_loss"] != pytest.approx(got["loss"])
    assert got["order_gain"] == pytest.approx(got["order_loss"] - got["loss"])
    timeline, rate = got["timeline"], tiny_model.musicgen.frame_rate
    assert timeline["seconds"] == list(range(int(-(-100 // rate))))
    # each full second weighs rate frames, the last the rest: the weighted mean is the clip loss
    weights = [min(rate, 100 - s * rate) for s in timeline["seconds"]]
    for key in ("loss", "order_loss"):
        mean = sum(w * v for w, v in zip(weights, timeline[key])) / sum(weights)
        assert mean == pytest.approx(got[key], rel=1e-5)


def test_collapse_is_a_falling_loss_with_no_gain():
    from video_bgm.objective import collapse_warning

    before = {"loss": 6.1, "conditioning_gain": 0.0}
    assert "collapsed" in collapse_warning(before, {"loss": 3.8, "conditioning_gain": 0.0})
    assert collapse_warning(before, {"loss": 3.8, "conditioning_gain": 0.3}) is None  # the video matters
    assert collapse_warning(before, {"loss": 6.09, "conditioning_gain": 0.0}) is None  # nothing learned at all
    assert collapse_warning(before, {"loss": 3.8}) is None  # one clip: no gain to judge by


def test_the_timeline_sets_change_when_they_say(tmp_path):
    """switch: colour and pitch change at mid-clip; motion: the bar moves at its speed, clicks at its rate."""
    import soundfile

    from conftest import run_script
    from video_bgm import media
    from video_bgm.synthetic import MOTION_CLICKS, MOTION_SPEEDS, PAIRED_COLOURS, PAIRED_PITCHES

    result = run_script("code/tools/make_synthetic_dataset.py", tmp_path / "switch", "--kind", "switch", "--clips", "4",
                        "--seconds", "2")
    assert result.returncode == 0, result.stderr
    frames, _ = media.sample_frames(tmp_path / "switch/videos/switch00.mp4", 2.0)
    colours = [tuple(int(c) for c in f[20, 20]) for f in frames]
    assert all(abs(a - b) < 8 for a, b in zip(colours[0], PAIRED_COLOURS[0]))
    assert all(abs(a - b) < 8 for a, b in zip(colours[-1], PAIRED_COLOURS[1]))
    music, rate = soundfile.read(tmp_path / "switch/audio/switch00.wav")
    half = len(music) // 2
    peaks = [np.fft.rfftfreq(half, 1 / rate)[np.abs(np.fft.rfft(part)).argmax()] for part in (music[:half], music[half:])]
    assert peaks == [pytest.approx(PAIRED_PITCHES[0], abs=1), pytest.approx(PAIRED_PITCHES[1], abs=1)]

    assert run_script("code/tools/make_synthetic_dataset.py", tmp_path / "motion", "--kind", "motion", "--clips", "4",
                      "--seconds", "2").returncode == 0
    for k in (0, 3):
        frames, _ = media.sample_frames(tmp_path / f"motion/videos/motion0{k}.mp4", 10.0)
        bar = [int(np.argmax(f[16, :, 0].numpy() < 80)) for f in frames[:3]]
        assert bar[1] - bar[0] == pytest.approx(MOTION_SPEEDS[k] / 10 * 28, abs=1.5)  # width 32 - bar 4
        clicks, rate = soundfile.read(tmp_path / f"motion/audio/motion0{k}.wav")
        assert (np.abs(clicks) > 0.5).reshape(-1, rate // 100).any(axis=1).sum() == pytest.approx(2 * MOTION_CLICKS[k], abs=1)
