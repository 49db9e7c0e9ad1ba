"""The training objective, shared by training and evaluation: batches of cached segments, their
conditioning, MusicGen's loss on them, and the conditioning gain.

Training validates with ``conditioning_losses`` and evaluate.py reports the same function's numbers,
so the two are the same numbers on the same clips.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch.utils.data import DataLoader

from .data.segments import SegmentDataset
from .pipeline import VideoBGM


def collate(items: list[dict]) -> dict:
    batch = {k: torch.stack([item[k] for item in items]) for k in ("features", "features_mask", "codes", "codes_mask")}
    batch["caption"] = [item["caption"] for item in items]
    batch["index"] = torch.tensor([item["index"] for item in items])
    return batch


def condition_batch(model: VideoBGM, batch: dict, device: torch.device, features: torch.Tensor | None = None,
                    null: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder-space conditioning [B, N, D] + mask of a batch: its videos (or ``features``, e.g. other
    clips' videos), joined with the T5 embeddings of its captions; ``null`` masks everything out
    (MusicGen's null condition)."""
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
    return condition, mask


def batch_loss(model: VideoBGM, batch: dict, device: torch.device, features: torch.Tensor | None = None,
               null: bool = False, autocast=nullcontext) -> torch.Tensor:
    """MusicGen's loss on a batch; ``features`` replaces the batch's (shuffled video), ``null``
    uses MusicGen's null condition (no video at all)."""
    condition, mask = condition_batch(model, batch, device, features, null)
    with autocast():
        return model.musicgen.loss(condition, mask, batch["codes"].to(device), batch["codes_mask"].to(device))


@torch.no_grad()
def conditioning_losses(model: VideoBGM, dataset: SegmentDataset, batch_size: int, device: torch.device,
                        autocast=nullcontext) -> dict:
    """Cross-entropy with matched videos, shuffled videos and no video (null condition).

    Shuffling pairs clip i's music with clip i+1's video (a derangement), so the gain is
    defined from two clips on. Training's validation/test numbers and evaluate.py's
    conditioning gain both come from here, so they are the same numbers on the same clips.
    """
    was_training = model.temporal.training
    model.temporal.eval()
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    all_features = torch.stack([dataset[i]["features"] for i in range(len(dataset))])
    totals = {"loss": 0.0, "shuffled_loss": 0.0, "null_loss": 0.0}
    for batch in loader:
        n = len(batch["index"])
        totals["loss"] += n * batch_loss(model, batch, device, autocast=autocast).item()
        totals["null_loss"] += n * batch_loss(model, batch, device, null=True, autocast=autocast).item()
        if len(dataset) > 1:
            other = all_features[(batch["index"] + 1) % len(dataset)]
            totals["shuffled_loss"] += n * batch_loss(model, batch, device, features=other, autocast=autocast).item()
    model.temporal.train(was_training)
    metrics = {k: v / len(dataset) for k, v in totals.items()}
    if len(dataset) > 1:
        metrics["conditioning_gain"] = metrics["shuffled_loss"] - metrics["loss"]
    else:
        del metrics["shuffled_loss"]
    metrics["clips"] = len(dataset)
    return metrics
