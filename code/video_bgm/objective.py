"""The training objective, shared by training and evaluation: batches of cached segments, their
conditioning, MusicGen's loss on them (per clip and per audio frame), the conditioning gain and the
order gain.

Training validates with ``conditioning_losses`` and evaluate.py reports the same function's numbers,
so the two are the same numbers on the same clips.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch.utils.data import DataLoader

from .data.segments import SegmentDataset
from .pipeline import VideoBGM
from .time_band import TimeBand


def collate(items: list[dict]) -> dict:
    batch = {k: torch.stack([item[k] for item in items]) for k in ("features", "features_mask", "codes", "codes_mask")}
    batch["caption"] = [item["caption"] for item in items]
    batch["index"] = torch.tensor([item["index"] for item in items])
    return batch


def condition_batch(model: VideoBGM, batch: dict, device: torch.device, features: torch.Tensor | None = None,
                    null: bool = False) -> tuple[torch.Tensor, torch.Tensor, TimeBand | None]:
    """Decoder-space conditioning [B, N, D] + mask of a batch: its videos (or ``features``, e.g. other
    clips' videos), joined with the T5 embeddings of its captions; ``null`` masks everything out
    (MusicGen's null condition). Third: the model's time band (None for global conditioning)."""
    features = (batch["features"] if features is None else features).to(device)
    condition, mask = model.condition(features, batch["features_mask"].to(device))
    captions = batch["caption"]
    if any(captions):
        text, text_mask = model.musicgen.encode_text([c or "" for c in captions])
        text_mask = text_mask & torch.tensor([bool(c) for c in captions], device=device)[:, None]
        condition = torch.cat([condition, model.musicgen.project_text(text)], dim=1)
        mask = torch.cat([mask, text_mask], dim=1)
    if null:
        mask = torch.zeros_like(mask)
    return condition, mask, model.segment_band(features.shape[1], condition.shape[1])


def batch_loss(model: VideoBGM, batch: dict, device: torch.device, features: torch.Tensor | None = None,
               null: bool = False, autocast=nullcontext) -> torch.Tensor:
    """MusicGen's loss on a batch; ``features`` replaces the batch's (shuffled video), ``null``
    uses MusicGen's null condition (no video at all)."""
    condition, mask, band = condition_batch(model, batch, device, features, null)
    with autocast():
        return model.musicgen.loss(condition, mask, batch["codes"].to(device), batch["codes_mask"].to(device), band)


def frame_losses(model: VideoBGM, batch: dict, device: torch.device, features: torch.Tensor | None = None,
                 null: bool = False, autocast=nullcontext) -> torch.Tensor:
    """``batch_loss`` per audio frame [B, T] (0 on padding): the timeline of the music's cross-entropy."""
    condition, mask, band = condition_batch(model, batch, device, features, null)
    with autocast():
        return model.musicgen.frame_losses(condition, mask, batch["codes"].to(device), batch["codes_mask"].to(device),
                                           band)


def swap_halves(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each clip's real frames [B, T, F] with its two halves swapped in time (the second half plays
    first): the same pictures in the wrong order, for the order gain."""
    out = features.clone()
    for i, n in enumerate(mask.sum(dim=1).tolist()):
        half = n // 2
        out[i, :n] = torch.cat([features[i, half:n], features[i, :half]])
    return out


@torch.no_grad()
def conditioning_losses(model: VideoBGM, dataset: SegmentDataset, batch_size: int, device: torch.device,
                        autocast=nullcontext, timeline: bool = False) -> dict:
    """Cross-entropy with matched videos, shuffled videos, the matched videos with their halves
    swapped in time, and no video (null condition).

    Shuffling pairs clip i's music with clip i+1's video (a derangement), so the conditioning gain
    is defined from two clips on. The order gain (swapped minus matched) is zero when the
    conditioning is a summary of the clip and positive when the music follows the picture in time.
    Training's validation/test numbers and evaluate.py's both come from here, so they are the same
    numbers on the same clips. ``timeline``: also the mean matched and swapped cross-entropy of
    each second of the clips (``timeline``: seconds, loss, order_loss).
    """
    was_training = model.temporal.training
    model.temporal.eval()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    all_features = torch.stack([dataset[i]["features"] for i in range(len(dataset))])
    totals = {"loss": 0.0, "shuffled_loss": 0.0, "order_loss": 0.0, "null_loss": 0.0}
    per_frame = {"loss": [], "order_loss": [], "frames": []}
    for batch in loader:
        n = len(batch["index"])
        valid = batch["codes_mask"].to(device).float()

        def clip_mean(losses: torch.Tensor) -> float:  # over the batch's real frames, as batch_loss
            return ((losses * valid).sum() / valid.sum()).item()

        matched = frame_losses(model, batch, device, autocast=autocast)
        swapped = frame_losses(model, batch, device, swap_halves(batch["features"], batch["features_mask"]),
                               autocast=autocast)
        totals["loss"] += n * clip_mean(matched)
        totals["order_loss"] += n * clip_mean(swapped)
        totals["null_loss"] += n * clip_mean(frame_losses(model, batch, device, null=True, autocast=autocast))
        if len(dataset) > 1:
            other = all_features[(batch["index"] + 1) % len(dataset)]
            totals["shuffled_loss"] += n * clip_mean(frame_losses(model, batch, device, other, autocast=autocast))
        if timeline:
            for key, losses in (("loss", matched), ("order_loss", swapped), ("frames", valid)):
                per_frame[key].append((losses * valid).sum(dim=0).cpu())
    model.temporal.train(was_training)
    metrics = {k: v / len(dataset) for k, v in totals.items()}
    metrics["order_gain"] = metrics["order_loss"] - metrics["loss"]
    if len(dataset) > 1:
        metrics["conditioning_gain"] = metrics["shuffled_loss"] - metrics["loss"]
    else:
        del metrics["shuffled_loss"]
    metrics["clips"] = len(dataset)
    if timeline and per_frame["frames"]:
        metrics["timeline"] = _per_second({k: _sum_ragged(v) for k, v in per_frame.items()}, model.musicgen.frame_rate)
    return metrics


# A collapsed encoder: the loss fell by this much (the decoder learned a music prior) while the
# conditioning gain stayed under this (the music it expects does not depend on the video).
COLLAPSE_LOSS_DROP = 0.05  # nats
COLLAPSE_GAIN = 0.01       # nats


def collapse_warning(before: dict, after: dict, split: str = "validation") -> str | None:
    """The warning for a collapsed video encoder, from ``conditioning_losses`` before and after
    training (None when the gain shows the video matters, or cannot be measured)."""
    gain = after.get("conditioning_gain")
    drop = before["loss"] - after["loss"]
    if gain is None or drop < COLLAPSE_LOSS_DROP or gain >= COLLAPSE_GAIN:
        return None
    return (f"the {split} loss fell by {drop:.3f} nats ({before['loss']:.3f} -> {after['loss']:.3f}) but the "
            f"conditioning gain is {gain:+.4f} nats: the video encoder has collapsed to a music prior that "
            "ignores the video (the music does not depend on which video it sees)")


def _sum_ragged(rows: list[torch.Tensor]) -> torch.Tensor:
    out = torch.zeros(max(len(r) for r in rows))
    for r in rows:
        out[:len(r)] += r
    return out


def _per_second(sums: dict, frame_rate: float) -> dict:
    """Per-frame sums over clips -> the mean cross-entropy of each whole or partial second."""
    frames = int((sums["frames"] > 0).nonzero().max()) + 1  # positions where every clip was padding go
    starts = [round(s * frame_rate) for s in range(int(-(-frames // frame_rate)))]
    spans = list(zip(starts, starts[1:] + [frames]))
    out = {"seconds": list(range(len(spans)))}
    for key in ("loss", "order_loss"):
        out[key] = [float(sums[key][a:b].sum() / sums["frames"][a:b].sum()) for a, b in spans]
    return out
