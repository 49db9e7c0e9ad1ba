"""The frozen MusicGen (transformers' port) conditioned on our own tokens.

All conditioning here is in *decoder space*: ``[B, N, D]`` tokens that go straight into the
decoder's cross-attention, with a mask ``[B, N]``. Tokens in T5 space (pseudo-text
embeddings, text prompts) get there through ``project_text`` (MusicGen's own frozen
``enc_to_dec_proj``). MusicGen's null condition is all-zero conditioning with a zero mask,
exactly what transformers' MusicGen feeds its unconditional branch.

Codes are ``[B, K, F]``: K codebooks (interleaved left/right for stereo models) at
``frame_rate`` frames per second.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from transformers import MusicgenForConditionalGeneration
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from .errors import ModelError
from .refs import first_line, load_pretrained

ProgressFn = Callable[[int, int], None]  # (steps done, total steps)


class MusicGen:
    """A frozen MusicGen: the training loss, guided sampling of codes, and EnCodec decoding."""

    def __init__(self, model: MusicgenForConditionalGeneration, name: str = ""):
        self.model = model.eval()
        self.model.requires_grad_(False)
        self.name = name or model.name_or_path
        self._tokenizer = None

    @classmethod
    def from_pretrained(cls, ref: str, revision: str | None = None, device="cpu",
                        dtype: torch.dtype = torch.float32) -> "MusicGen":
        model = load_pretrained(MusicgenForConditionalGeneration, ref, "MusicGen", revision, dtype=dtype)
        return cls(model.to(device), name=ref)

    # --- shapes and rates --------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def sample_rate(self) -> int:
        """Audio samples per second (32000 for every published MusicGen)."""
        return self.model.config.audio_encoder.sampling_rate

    @property
    def frame_rate(self) -> float:
        """Code frames per second (50 for every published MusicGen)."""
        return self.model.config.audio_encoder.frame_rate

    @property
    def audio_channels(self) -> int:
        return self.model.config.decoder.audio_channels

    @property
    def num_codebooks(self) -> int:
        return self.model.config.decoder.num_codebooks

    @property
    def text_dim(self) -> int:
        """Width of T5 space: the text encoder's hidden size (768 for every published MusicGen)."""
        return self.model.config.text_encoder.hidden_size

    @property
    def decoder_dim(self) -> int:
        return self.model.config.decoder.hidden_size

    @property
    def max_frames(self) -> int:
        """Longest code sequence the decoder's position table allows."""
        return self.model.config.decoder.max_position_embeddings - self._delays

    @property
    def _delays(self) -> int:
        """Codebooks per channel: the delay pattern adds this many - 1 steps."""
        return self.num_codebooks // self.audio_channels

    @property
    def _pad_id(self) -> int:
        # MusicGen uses one id (= vocab size) as start token and as the delay pattern's pad.
        return self.model.config.decoder.pad_token_id

    # --- conditioning ------------------------------------------------------------------------
    def project_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """T5-space tokens [B, N, text_dim] -> decoder space [B, N, D] (MusicGen's frozen projection)."""
        if self.text_dim != self.decoder_dim and self.model.config.decoder.cross_attention_hidden_size is None:
            return self.model.enc_to_dec_proj(tokens)
        return tokens

    @torch.no_grad()
    def encode_text(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> T5 embeddings [B, S, text_dim] and mask [B, S], as MusicGen embeds text."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.name)
            except (OSError, ValueError) as err:
                raise ModelError(self.name, f"cannot load MusicGen's tokenizer ({first_line(err)})") from None
        batch = self._tokenizer(prompts, padding=True, return_tensors="pt").to(self.device)
        hidden = self.model.text_encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        return hidden, batch.attention_mask.bool()

    # --- training loss -----------------------------------------------------------------------
    def delay_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, K, T] -> delayed codes [B, K, T + d - 1] (d codebooks per channel).

        Codebook k of each channel is shifted right by k; the gaps hold the pad id, which
        the loss ignores. Stereo models interleave left/right codebooks (0=L0, 1=R0, 2=L1, ...).
        """
        B, K, T = codes.shape
        d = self._delays
        out = codes.new_full((B, K, T + d - 1), self._pad_id)
        for k in range(K):
            shift = k // self.audio_channels
            out[:, k, shift : shift + T] = codes[:, k]
        return out

    def loss(self, condition: torch.Tensor, condition_mask: torch.Tensor, codes: torch.Tensor,
             codes_mask: torch.Tensor | None = None) -> torch.Tensor:
        """MusicGen's training loss: mean over codebooks of the token cross-entropy.

        condition [B, N, D] (decoder space), condition_mask [B, N], codes [B, K, T] (EnCodec
        codes of the paired audio), codes_mask [B, T] (False = padding, ignored).
        Gradients flow into ``condition``; every MusicGen weight stays frozen.
        """
        if codes_mask is not None:
            codes = codes.masked_fill(~codes_mask.bool()[:, None, :], self._pad_id)
        labels = self.delay_codes(codes).transpose(1, 2)  # (B, T + d - 1, K)
        condition = condition * condition_mask[..., None].to(condition.dtype)
        out = self.model.decoder(
            encoder_hidden_states=condition, encoder_attention_mask=condition_mask.long(), labels=labels,
        )
        return out.loss

    # --- generation --------------------------------------------------------------------------
    def _cross_attention_inputs(self, condition, condition_mask, guidance_scale):
        """Batch the conditional rows and, with guidance, MusicGen's null condition under them."""
        condition = condition * condition_mask[..., None].to(condition.dtype)
        mask = condition_mask.long()
        if guidance_scale != 1.0:
            condition = torch.cat([condition, torch.zeros_like(condition)])
            mask = torch.cat([mask, torch.zeros_like(mask)])
        return condition, mask

    def step_logits(self, input_ids, condition, mask, cache) -> torch.Tensor:
        """One decoder step: input_ids [R*K, L] -> logits of the last position [R, K, V]."""
        out = self.model.decoder(input_ids=input_ids, encoder_hidden_states=condition,
                                 encoder_attention_mask=mask, cache=cache, use_cache=True)
        logits = out.logits[:, -1]  # (R * K, V)
        return logits.view(-1, self.num_codebooks, logits.shape[-1])

    @torch.no_grad()
    def generate_codes(self, condition: torch.Tensor, condition_mask: torch.Tensor, num_frames: int,
                       guidance_scale: float = 3.0, temperature: float = 1.0, top_k: int = 250,
                       top_p: float = 0.0, generator: torch.Generator | None = None,
                       progress: ProgressFn | None = None, prompt: torch.Tensor | None = None) -> torch.Tensor:
        """Sample codes [B, K, num_frames] given decoder-space conditioning [B, N, D].

        Classifier-free guidance: conditional and null-conditioned rows go through the decoder
        in one batched forward per step and are mixed as ``uncond + s * (cond - uncond)``.
        The conditioning's cross-attention keys/values are computed at the first step and
        reused from the cache afterwards.

        ``prompt``: aligned codes [B, K, P] the new codes continue (MusicGen's audio prompt). They
        are fed as decoder input with the delay pattern applied as transformers'
        ``build_delay_pattern_mask`` does (the prompt's delayed tail is forced, not sampled), and
        only the ``num_frames`` new frames are returned. Progress counts sampled steps only.
        """
        P = 0 if prompt is None else prompt.shape[-1]
        if not 0 < num_frames <= self.max_frames - P:
            raise ValueError(f"num_frames must be in [1, {self.max_frames - P}] after a {P}-frame prompt, got {num_frames}")
        B, K = condition.shape[0], self.num_codebooks
        if prompt is not None and tuple(prompt.shape[:2]) != (B, K):
            raise ValueError(f"prompt must be [{B}, {K}, P] codes, got {tuple(prompt.shape)}")
        condition, mask = self._cross_attention_inputs(condition, condition_mask, guidance_scale)
        # pattern[b*K + k, t] is the pad id where codebook k has no code at step t, the prompt's
        # code where it has one, else -1 (to be sampled).
        start = torch.full((B * K, 1), self._pad_id, dtype=torch.long, device=self.device)
        if prompt is not None:
            start = torch.cat([start, prompt.reshape(B * K, P).to(device=self.device, dtype=torch.long)], dim=1)
        total = P + num_frames + self._delays  # start token + frames + delays - 1
        tokens, pattern = self.model.decoder.build_delay_pattern_mask(start, self._pad_id, max_length=total)
        first = tokens.shape[1]  # the prefix up to the first position with something to sample
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        for step in range(first - 1, total - 1):
            inputs = tokens if step == first - 1 else tokens[:, -1:]
            if guidance_scale != 1.0:
                inputs = torch.cat([inputs, inputs])
            logits = self.step_logits(inputs, condition, mask, cache)  # (R, K, V)
            if guidance_scale != 1.0:
                cond, uncond = logits.chunk(2)
                logits = uncond + guidance_scale * (cond - uncond)
            next_tokens = sample(logits.reshape(B * K, -1), temperature, top_k, top_p, generator)
            fixed = pattern[:, step + 1]
            next_tokens = torch.where(fixed == -1, next_tokens, fixed)
            tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
            if progress is not None:
                progress(step + 2 - first, total - first)
        return self.undelay(tokens[:, 1:].reshape(B, K, -1), P + num_frames)[..., P:]

    def undelay(self, delayed: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Delayed codes [B, K, num_frames + d - 1] -> aligned codes [B, K, num_frames]."""
        return torch.stack([delayed[:, k, k // self.audio_channels : k // self.audio_channels + num_frames]
                            for k in range(delayed.shape[1])], dim=1)

    # --- codec -------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, K, F] -> waveform [B, C, F * sample_rate / frame_rate] (float, about [-1, 1])."""
        codec = self.model.audio_encoder
        scales = [None] * codes.shape[0]
        if self.audio_channels == 1:
            return codec.decode(codes[None], scales).audio_values
        left = codec.decode(codes[None, :, 0::2], scales).audio_values
        right = codec.decode(codes[None, :, 1::2], scales).audio_values
        return torch.cat([left, right], dim=1)

    @torch.no_grad()
    def encode_audio(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform [B, C, S] at ``sample_rate`` -> codes [B, K, F] (mono models need C = 1)."""
        codec = self.model.audio_encoder

        def encode(mono):  # (B, 1, S) -> (B, K / channels, F): the first residual quantizers
            return codec.encode(mono).audio_codes[0][:, : self._delays]

        if self.audio_channels == 1:
            return encode(wav[:, :1])
        left, right = encode(wav[:, :1]), encode(wav[:, -1:])
        return torch.stack([left, right], dim=2).flatten(1, 2)  # interleave: L0 R0 L1 R1 ...


def sample(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample one id per row of logits [R, V]: temperature, then top-k, then top-p (nucleus)."""
    logits = logits.float() / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0 < top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= top_p  # keep the smallest set reaching p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]
