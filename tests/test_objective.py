"""The training objective shared by training and evaluation: batches, conditioning, loss, conditioning gain."""

from __future__ import annotations

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
        condition, mask = condition_batch(tiny_model, plain, CPU)
        with_text, text_mask = condition_batch(tiny_model, captioned, CPU)
        _, null_mask = condition_batch(tiny_model, captioned, CPU, null=True)
    assert with_text.shape[1] > condition.shape[1] and text_mask.shape == with_text.shape[:2]
    assert mask.all() and not null_mask.any()
