"""Video-music correspondence, measured with the trained encoder's conditioning likelihood.

- **Conditioning gain** on real (video, music) pairs: the decoder's cross-entropy of the music
  with its own video, with another clip's video (shuffled) and with MusicGen's null condition;
  computed by ``objective.conditioning_losses``, the function training validates with, so the
  numbers equal training's test-split numbers on the same clips and segment length.
- **Retrieval**: for every piece i (its EnCodec codes) and every candidate video j, the
  cross-entropy ``CE[i, j]`` of the piece under video j's conditioning. The rank of the piece's
  own video among all N candidates (1 = lowest CE; ties share the mean of their ranks) gives the
  mean rank, recall@1 and mean reciprocal rank; chance is (N + 1) / 2, 1 / N and H_N / N.
  Retrieval conditions on the video alone (no caption).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..musicgen import MusicGen
from ..time_band import TimeBand


@torch.no_grad()
def item_losses(musicgen: MusicGen, condition: torch.Tensor, condition_mask: torch.Tensor, codes: torch.Tensor,
                codes_mask: torch.Tensor | None = None, band: TimeBand | None = None) -> torch.Tensor:
    """Per-piece MusicGen loss [B]: for each piece, the mean over codebooks of its token cross-entropy.

    Same inputs (``band`` too) and the same value as ``MusicGen.loss`` for a batch of one (which
    averages over the whole batch instead).
    """
    if codes_mask is not None:
        codes = codes.masked_fill(~codes_mask.bool()[:, None, :], musicgen._pad_id)
    delayed = musicgen.delay_codes(codes)  # (B, K, L)
    condition = condition * condition_mask[..., None].to(condition.dtype)
    B, K, L = delayed.shape
    mask = musicgen.cross_attention_mask(condition_mask, band, torch.arange(L, device=condition.device))
    out = musicgen.model.decoder(encoder_hidden_states=condition, encoder_attention_mask=mask,
                                 labels=delayed.transpose(1, 2))
    logits = out.logits.view(B, K, -1, out.logits.shape[-1])[:, :, -L:].float()  # (B, K, L, V)
    targets = delayed.masked_fill(delayed == musicgen._pad_id, -100)
    ce = F.cross_entropy(logits.flatten(0, 2), targets.flatten(), ignore_index=-100, reduction="none").view(B, K, L)
    counts = (targets != -100).sum(-1).clamp(min=1)
    return (ce.sum(-1) / counts).mean(-1)  # (B,)


def model_input(config, features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames [T, F] + mask [T] as the model sees them at generation: for models with a fixed
    ``num_frames`` (the thesis's), the real frames fitted to N positions (``frame_window.fit``)."""
    if not getattr(config, "num_frames", 0):
        return features, mask
    from .. import frame_window  # the thesis models' frame window (arrives with the checkpoint work)

    fitted, fitted_mask = frame_window.fit(features[mask.bool()], config)
    return fitted, fitted_mask


@torch.no_grad()
def ce_matrix(model, features: torch.Tensor, features_mask: torch.Tensor, codes: torch.Tensor,
              codes_mask: torch.Tensor, batch_size: int = 8) -> np.ndarray:
    """CE[i, j] [N, N]: piece i's codes [N, K, L] (mask [N, L]) under video j's frames [N, T, F] (mask [N, T])."""
    device = model.device
    inputs = [model_input(model.config, f, m) for f, m in zip(features, features_mask)]
    feats = torch.stack([f for f, _ in inputs]).to(device)
    masks = torch.stack([m for _, m in inputs]).to(device)
    was_training = model.temporal.training
    model.temporal.eval()
    conditions, condition_masks = [], []
    for s in range(0, len(feats), batch_size):
        c, m = model.condition(feats[s:s + batch_size], masks[s:s + batch_size])
        conditions.append(c)
        condition_masks.append(m)
    condition, condition_mask = torch.cat(conditions), torch.cat(condition_masks)  # (N, Nt, D), (N, Nt)
    band = model.segment_band(feats.shape[1], condition.shape[1])
    n = len(codes)
    out = np.zeros((n, n))
    for i in range(n):
        for s in range(0, n, batch_size):
            e = min(n, s + batch_size)
            piece = codes[i:i + 1].expand(e - s, -1, -1).to(device)
            piece_mask = codes_mask[i:i + 1].expand(e - s, -1).to(device)
            out[i, s:e] = item_losses(model.musicgen, condition[s:e], condition_mask[s:e], piece, piece_mask,
                                      band).cpu().numpy()
    model.temporal.train(was_training)
    return out


@torch.no_grad()
def null_losses(musicgen: MusicGen, codes: torch.Tensor, codes_mask: torch.Tensor, batch_size: int = 8) -> np.ndarray:
    """CE [N] of each piece under MusicGen's null condition (all-zero conditioning, mask 0)."""
    out = []
    for s in range(0, len(codes), batch_size):
        c = codes[s:s + batch_size].to(musicgen.device)
        condition = torch.zeros(len(c), 1, musicgen.decoder_dim, device=musicgen.device)
        mask = torch.zeros(len(c), 1, dtype=torch.bool, device=musicgen.device)
        out.append(item_losses(musicgen, condition, mask, c, codes_mask[s:s + batch_size].to(musicgen.device)).cpu())
    return torch.cat(out).numpy()


def ranks(matrix: np.ndarray) -> np.ndarray:
    """Rank [N] of the true candidate (the diagonal) in each row of CE [N, N]: 1 = lowest CE,
    tied candidates share the mean of their ranks (so chance stays (N + 1) / 2)."""
    m = np.asarray(matrix, dtype=np.float64)
    own = np.diagonal(m)[:, None]
    lower = (m < own).sum(axis=1)
    ties = (m == own).sum(axis=1) - 1  # other candidates with exactly the same CE
    return 1.0 + lower + ties / 2.0


def retrieval_metrics(matrix: np.ndarray) -> dict:
    """Mean/median rank, recall@1, MRR of the true videos, their chance levels, and the CE gain."""
    m = np.asarray(matrix, dtype=np.float64)
    n = len(m)
    r = ranks(m)
    off = m[~np.eye(n, dtype=bool)]
    return {
        "candidates": n,
        "mean_rank": float(r.mean()), "median_rank": float(np.median(r)),
        "recall_at_1": float((r == 1).mean()), "mrr": float((1.0 / r).mean()),
        "chance_mean_rank": (n + 1) / 2, "chance_recall_at_1": 1 / n,
        "chance_mrr": float(sum(1 / k for k in range(1, n + 1)) / n),
        "matched_loss": float(np.diagonal(m).mean()),
        "mismatched_loss": float(off.mean()) if n > 1 else None,
        "gain": float(off.mean() - np.diagonal(m).mean()) if n > 1 else None,
    }
