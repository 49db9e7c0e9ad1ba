"""The trainable stage: a temporal transformer from per-frame features to conditioning tokens.

features [B, T, F] --input projection--> [B, T, d] + sinusoidal positions
  --(optional N learned query tokens in front)--> TransformerEncoder (padding mask)
  --output projection--> tokens [B, N or T, C]

C is 768 in "t5" space (pseudo-text embeddings that go through MusicGen's frozen text
projection) or the decoder width in "decoder" space (straight into cross-attention).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import motion
from .config import TemporalConfig, VideoModelConfig


def sinusoidal_positions(num_positions: int, dim: int) -> torch.Tensor:
    """[P, dim] table: pe[p, 2i] = sin(p / 10000^(2i/dim)), pe[p, 2i+1] = cos(...)."""
    position = torch.arange(num_positions, dtype=torch.float32)[:, None]
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(num_positions, dim)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term[: dim // 2])
    return pe


class TemporalTransformer(nn.Module):
    """``extra_features``: inputs per frame beside the frame encoder's ``feature_dim`` (the motion
    channels); ``for_model`` sets them from a model's config."""

    def __init__(self, config: TemporalConfig, extra_features: int = 0):
        super().__init__()
        config.validate()
        self.config = config
        d = config.d_model
        inputs = config.feature_dim + extra_features
        self.input_proj = nn.Identity() if inputs == d else nn.Linear(inputs, d)
        # A buffer, not a parameter: fixed positions, and not saved (rebuilt from the config).
        self.register_buffer("positions", sinusoidal_positions(config.max_positions, d), persistent=False)
        self.queries = nn.Parameter(torch.randn(config.num_tokens, d) * 0.02) if config.num_tokens else None
        layer = nn.TransformerEncoderLayer(
            d, config.num_heads, config.ff_dim, config.dropout, activation=config.activation,
            batch_first=True, norm_first=config.norm_first,
        )
        # Pre-norm stacks need a final norm; post-norm layers already end in one.
        self.encoder = nn.TransformerEncoder(
            layer, config.num_layers, norm=nn.LayerNorm(d) if config.norm_first else None,
            enable_nested_tensor=False,
        )
        self.output_proj = nn.Linear(d, config.output_dim)

    @classmethod
    def for_model(cls, config: VideoModelConfig) -> "TemporalTransformer":
        return cls(config.temporal, motion.CHANNELS if config.motion else 0)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """features [B, T, F], mask [B, T] (True = real frame) -> tokens [B, N, C], token mask [B, N].

        Frames beyond ``max_positions`` are an error: positions the model never saw.
        """
        B, T, _ = features.shape
        if T > self.config.max_positions:
            raise ValueError(f"{T} frames exceed the video encoder's {self.config.max_positions} positions")
        if mask is None:
            mask = torch.ones(B, T, dtype=torch.bool, device=features.device)
        mask = mask.bool()
        x = self.input_proj(features) + self.positions[:T].to(features.dtype)  # (B, T, d)
        if self.queries is not None:
            queries = self.queries.to(x.dtype).expand(B, -1, -1)  # (B, N, d)
            x = torch.cat([queries, x], dim=1)  # (B, N + T, d)
            mask = torch.cat([mask.new_ones(B, self.config.num_tokens), mask], dim=1)
        x = self.encoder(x, src_key_padding_mask=~mask)
        if self.queries is not None:
            x, mask = x[:, : self.config.num_tokens], mask[:, : self.config.num_tokens]
        tokens = self.output_proj(x) * mask[..., None]  # (B, N, C); padded tokens are exactly zero
        return tokens, mask
