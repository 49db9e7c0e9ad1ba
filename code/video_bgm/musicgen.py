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

import math
from typing import Callable

import torch
import torch.nn.functional as F
from transformers import MusicgenForConditionalGeneration

from .config import PRECISIONS
from .decoding import Stepper, use_few_row_kernel
from .errors import ModelError
from .loudness import raised_cosine
from .refs import first_line, load_pretrained
from .time_band import TimeBand

ProgressFn = Callable[[int, int], None]  # (steps done, total steps)
# EnCodec's decoder holds ~40 MB of activations per second of 32 kHz audio, so long code
# sequences are decoded in chunks of about DECODE_CHUNK seconds, each with DECODE_CONTEXT seconds
# of codes on either side (its LSTM and convolutions warm up on them), crossfaded over SEAM_FADE.
DECODE_CHUNK = 10.0
DECODE_CONTEXT = 2.0
SEAM_FADE = 0.5


class MusicGen:
    """A frozen MusicGen: the training loss, guided sampling of codes, and EnCodec decoding.

    ``fast`` (the default) lets generation speed up the decoder (see ``decoding``): on the CPU in
    float32 its Linear layers run a few-row kernel from the first generation on (same weights,
    not copied); on CUDA the cache is static and the one-token step is compiled
    with CUDA graphs (``static_cache``, ``compile_step``). ``fast=False`` leaves the transformers
    model exactly as given.
    """

    def __init__(self, model: MusicgenForConditionalGeneration, name: str = "", fast: bool = True):
        self.model = model.eval()
        self.model.requires_grad_(False)
        self.name = name or model.name_or_path
        self.fast = fast
        self.static_cache: bool | None = None  # None: on CUDA (with ``fast``)
        self.compile_step = True  # with a static cache: compile the one-token step (CUDA graphs)
        self._static_steppers: dict = {}
        self._tokenizer = None

    @classmethod
    def from_pretrained(cls, ref: str, revision: str | None = None, device="cpu",
                        precision: str = "fp32") -> "MusicGen":
        """``precision="bf16"`` runs the decoder (the part that runs per step) in bfloat16
        weights and activations; EnCodec and the text encoder stay float32."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        model = load_pretrained(MusicgenForConditionalGeneration, ref, "MusicGen", revision, dtype=torch.float32)
        model.decoder.to(getattr(torch, PRECISIONS[precision]))
        return cls(model.to(device), name=ref)

    # --- shapes and rates --------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        """The decoder's dtype (its embeddings'); conditioning is cast to it."""
        return self.model.decoder.model.decoder.embed_tokens[0].weight.dtype

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
             codes_mask: torch.Tensor | None = None, band: TimeBand | None = None) -> torch.Tensor:
        """MusicGen's training loss: mean over codebooks of the token cross-entropy.

        condition [B, N, D] (decoder space), condition_mask [B, N], codes [B, K, T] (EnCodec
        codes of the paired audio), codes_mask [B, T] (False = padding, ignored). ``band``:
        time-local conditioning (``time_band``; None: every position sees every token).
        Gradients flow into ``condition``; every MusicGen weight stays frozen.
        """
        return self._teacher_forced(condition, condition_mask, codes, codes_mask, band)[0].loss

    def frame_losses(self, condition: torch.Tensor, condition_mask: torch.Tensor, codes: torch.Tensor,
                     codes_mask: torch.Tensor | None = None, band: TimeBand | None = None) -> torch.Tensor:
        """The same cross-entropy per audio frame: [B, T], frame t's mean over codebooks of each
        codebook's token for frame t (codebook k's sits k steps later under the delay pattern).
        Padded frames are 0; the mean over the real frames of a batch is ``loss`` of that batch."""
        B, K, T = codes.shape
        out, codes = self._teacher_forced(condition, condition_mask, codes, codes_mask, band)
        logits = out.logits.reshape(B, K, -1, out.logits.shape[-1])[:, :, -(T + self._delays - 1):]
        total = torch.zeros(B, T, device=logits.device)
        for k in range(K):
            shift = k // self.audio_channels
            total += torch.nn.functional.cross_entropy(
                logits[:, k, shift:shift + T].float().transpose(1, 2), codes[:, k], reduction="none",
                ignore_index=self._pad_id)
        return total / K

    def _teacher_forced(self, condition, condition_mask, codes, codes_mask, band=None):
        """The decoder on ``codes`` as labels (delay pattern applied, padding set to the pad id, which
        the loss ignores): its output and the padded codes."""
        if codes_mask is not None:
            codes = codes.masked_fill(~codes_mask.bool()[:, None, :], self._pad_id)
        labels = self.delay_codes(codes).transpose(1, 2)  # (B, T + d - 1, K)
        condition = condition.to(self.dtype) * condition_mask[..., None].to(self.dtype)
        positions = torch.arange(labels.shape[1], device=self.device)
        out = self.model.decoder(
            encoder_hidden_states=condition, labels=labels,
            encoder_attention_mask=self.cross_attention_mask(condition_mask, band, positions),
        )
        return out, codes

    def cross_attention_mask(self, condition_mask: torch.Tensor, band: TimeBand | None,
                             positions: torch.Tensor) -> torch.Tensor:
        """The decoder's ``encoder_attention_mask`` for decoder positions ``positions``: MusicGen's
        own [B, N] without a band, else the band's additive [B, 1, L, N] (``time_band``)."""
        if band is None:
            return condition_mask.long()
        return band.attention_mask(condition_mask, positions, self.frame_rate, self.dtype)

    # --- generation --------------------------------------------------------------------------
    def _cross_attention_inputs(self, condition, condition_mask, guidance_scale):
        """Batch the conditional rows and, with guidance, MusicGen's null condition under them."""
        condition = condition.to(self.dtype) * condition_mask[..., None].to(self.dtype)
        mask = condition_mask.bool()
        if guidance_scale != 1.0:
            condition = torch.cat([condition, torch.zeros_like(condition)])
            mask = torch.cat([mask, torch.zeros_like(mask)])
        return condition, mask

    def _stepper(self, condition, mask, capacity: int) -> Stepper:
        decoder = self.model.decoder
        if self.fast and self.device.type == "cpu":
            use_few_row_kernel(decoder)  # no-op once done
        static = self.static_cache if self.static_cache is not None else self.fast and self.device.type == "cuda"
        if not static:
            return Stepper(decoder, condition, mask, capacity)
        # Fixed shapes: one cache as long as the position table serves every length, and is kept
        # (with its compiled graph) for the next generation with the same conditioning shape.
        key = (tuple(condition.shape), condition.dtype, tuple(mask.shape))
        stepper = self._static_steppers.get(key)
        if stepper is None:
            stepper = Stepper(decoder, condition.clone(), mask.clone(), decoder.config.max_position_embeddings,
                              static=True, compile=self.compile_step)
            self._static_steppers[key] = stepper
        else:
            stepper.restart(condition, mask)
        return stepper

    @torch.no_grad()
    def generate_codes(self, condition: torch.Tensor, condition_mask: torch.Tensor, num_frames: int,
                       guidance_scale: float = 3.0, temperature: float = 1.0, top_k: int = 250,
                       top_p: float = 0.0, generator: torch.Generator | None = None,
                       progress: ProgressFn | None = None, prompt: torch.Tensor | None = None,
                       band: TimeBand | None = None) -> torch.Tensor:
        """Sample codes [B, K, num_frames] given decoder-space conditioning [B, N, D].

        Classifier-free guidance: conditional and null-conditioned rows go through the decoder
        in one batched forward per step and are mixed as ``uncond + s * (cond - uncond)``.
        The conditioning's cross-attention keys/values are computed at the first step and
        reused from the cache afterwards.

        ``prompt``: aligned codes [B, K, P] the new codes continue (MusicGen's audio prompt). They
        are fed as decoder input with the delay pattern applied as transformers'
        ``build_delay_pattern_mask`` does (the prompt's delayed tail is forced, not sampled), and
        only the ``num_frames`` new frames are returned. Progress counts sampled steps only.

        ``band``: time-local conditioning (``time_band``), its token times measured from the
        start of the prompt (decoder position 0); the null rows stay fully masked.
        """
        P = 0 if prompt is None else prompt.shape[-1]
        if not 0 < num_frames <= self.max_frames - P:
            raise ValueError(f"num_frames must be in [1, {self.max_frames - P}] after a {P}-frame prompt, got {num_frames}")
        B, K = condition.shape[0], self.num_codebooks
        if prompt is not None and tuple(prompt.shape[:2]) != (B, K):
            raise ValueError(f"prompt must be [{B}, {K}, P] codes, got {tuple(prompt.shape)}")
        condition, mask = self._cross_attention_inputs(condition, condition_mask, guidance_scale)
        # With a band, the mask covers every position of the table: one shape for every length.
        mask = self.cross_attention_mask(
            mask, band, torch.arange(self.model.config.decoder.max_position_embeddings, device=self.device))
        # pattern[b*K + k, t] is the pad id where codebook k has no code at step t, the prompt's
        # code where it has one, else -1 (to be sampled).
        start = torch.full((B * K, 1), self._pad_id, dtype=torch.long, device=self.device)
        if prompt is not None:
            start = torch.cat([start, prompt.reshape(B * K, P).to(device=self.device, dtype=torch.long)], dim=1)
        total = P + num_frames + self._delays  # start token + frames + delays - 1
        tokens, pattern = self.model.decoder.build_delay_pattern_mask(start, self._pad_id, max_length=total)
        first = tokens.shape[1]  # the prefix up to the first position with something to sample
        step_logits = self._stepper(condition, mask, capacity=total)
        for step in range(first - 1, total - 1):
            inputs = tokens if step == first - 1 else tokens[:, -1:]
            if guidance_scale != 1.0:
                inputs = torch.cat([inputs, inputs])
            logits = step_logits(inputs).float()  # guidance mixes in float32 whatever the precision
            logits = logits.view(-1, K, logits.shape[-1])  # (R, K, V)
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
        """Codes [B, K, F] -> waveform [B, C, F * sample_rate / frame_rate] (float, about [-1, 1]).

        Longer than ``DECODE_CHUNK`` seconds: decoded in about equal chunks, each with
        ``DECODE_CONTEXT`` seconds of the codes around it, and joined with raised-cosine
        crossfades between two decodes of the same codes (memory stays that of one chunk).
        """
        frames = codes.shape[-1]
        chunks = math.ceil(frames / round(DECODE_CHUNK * self.frame_rate))
        if chunks <= 1:
            return self._decode(codes)
        context, half = round(DECODE_CONTEXT * self.frame_rate), round(SEAM_FADE * self.frame_rate / 2)
        per_frame = round(self.sample_rate / self.frame_rate)
        fade_in = torch.from_numpy(raised_cosine(2 * half * per_frame)).to(codes.device)
        bounds = [round(j * frames / chunks) for j in range(chunks + 1)]
        out = None
        for a, b in zip(bounds, bounds[1:]):
            lo, hi = max(0, a - context), min(frames, b + context)
            first, last = max(0, a - half), min(frames, b + half)  # this chunk's share, seams included
            audio = self._decode(codes[..., lo:hi])[..., (first - lo) * per_frame : (last - lo) * per_frame]
            if a > 0:
                audio[..., : fade_in.shape[0]] *= fade_in
            if b < frames:
                audio[..., -fade_in.shape[0]:] *= 1 - fade_in
            if out is None:
                out = audio.new_zeros(*audio.shape[:2], frames * per_frame)
            out[..., first * per_frame : last * per_frame] += audio
        return out

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
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
