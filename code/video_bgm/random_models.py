"""Randomly initialised models with real or tiny architectures, built from configs (no download).

Tests and ``code/tools/make_tiny_models.py`` use the tiny ones to run every command offline;
``bench/`` uses the real-size ones (``facebook/musicgen-small``, ``openai/clip-vit-base-patch32``
shapes), since compute does not depend on the weights' values.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    EncodecConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    PreTrainedTokenizerFast,
    T5Config,
)

from .config import FrameEncoderConfig, TemporalConfig, VideoModelConfig
from .frames import build_frame_encoder
from .musicgen import MusicGen

# Shapes of the published checkpoints (their config.json files), for real-size benchmarks.
_ENCODEC_32KHZ = dict(
    sampling_rate=32000, audio_channels=1, target_bandwidths=[2.2], upsampling_ratios=[8, 5, 4, 4],
    num_filters=64, hidden_size=128, codebook_size=2048, codebook_dim=128, num_lstm_layers=2,
    use_causal_conv=False, use_conv_shortcut=False, norm_type="weight_norm", normalize=False,
    chunk_length_s=None, overlap=None,
)
_T5_BASE = dict(d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12, vocab_size=32128,
                feed_forward_proj="relu")
_MUSICGEN_SIZES = {  # decoder width, layers, heads
    "small": (1024, 24, 16),
    "medium": (1536, 48, 24),
    "large": (2048, 48, 32),
}

# Tiny shapes: same sample rate and frame rate (50 Hz) as the real codec, so durations are real.
_TINY_VOCAB = 64
# 4 codebooks x 6 bits x 50 Hz = 1.2 kbps
_TINY_ENCODEC = dict(_ENCODEC_32KHZ, num_filters=4, hidden_size=16, codebook_size=_TINY_VOCAB,
                     codebook_dim=16, num_lstm_layers=1, target_bandwidths=[1.2])
_TINY_T5 = dict(d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2, vocab_size=128,
                feed_forward_proj="relu")
_TINY_WORDS = ("calm piano upbeat rock ambient drums guitar slow fast happy sad epic "
               "cinematic electronic jazz orchestral lofi music with and a the").split()


def musicgen_config(size: str = "tiny", stereo: bool = False) -> MusicgenConfig:
    """A MusicGen config: ``"tiny"`` for tests, or the shapes of ``facebook/musicgen-[stereo-]{small,medium,large}``."""
    codebooks = 8 if stereo else 4
    if size == "tiny":
        t5, encodec = _TINY_T5, _TINY_ENCODEC
        # A wide initialisation makes the random logits peaked rather than uniform, so that
        # sampling, guidance and conditioning visibly change the output in tests.
        decoder = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=128,
                       vocab_size=_TINY_VOCAB, max_position_embeddings=2048, initializer_factor=0.3)
    else:
        width, layers, heads = _MUSICGEN_SIZES[size]
        t5, encodec = _T5_BASE, _ENCODEC_32KHZ
        decoder = dict(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                       ffn_dim=4 * width, vocab_size=2048, max_position_embeddings=2048)
    vocab = decoder["vocab_size"]
    decoder_config = MusicgenDecoderConfig(
        **decoder, num_codebooks=codebooks, audio_channels=2 if stereo else 1, dropout=0.1,
        pad_token_id=vocab, bos_token_id=vocab,
    )
    decoder_config.decoder_start_token_id = vocab  # the labels= path needs it (NOTES)
    return MusicgenConfig(text_encoder=T5Config(**t5), audio_encoder=EncodecConfig(**encodec),
                          decoder=decoder_config)


def random_musicgen(config: MusicgenConfig, seed: int = 0) -> MusicgenForConditionalGeneration:
    """A MusicGen with random weights and the published checkpoints' generation defaults."""
    torch.manual_seed(seed)
    model = MusicgenForConditionalGeneration(config).eval()
    _init_codebooks_from_audio(model.audio_encoder, seed)
    _make_decoder_follow_codes(model.audio_encoder, seed)
    vocab = config.decoder.vocab_size
    gen = model.generation_config
    gen.decoder_start_token_id = gen.pad_token_id = gen.bos_token_id = vocab
    gen.do_sample, gen.guidance_scale, gen.top_k, gen.max_length = True, 3.0, 250, 1500
    return model


@torch.no_grad()
def _make_decoder_follow_codes(codec, seed: int, level: float = 0.1) -> None:
    """Random biases give every latent one large offset and the decoder its own, which swamp what
    the codes change: every code decoded to the same waveform (correlation 1.0000 between any two
    pieces). The codebooks' common offset moves into the encoder's last bias (so every sound keeps
    its codes: nearest neighbours do not change when latents and codebooks shift alike), the
    decoder's biases go to zero and its last convolution is scaled so that random codes decode to
    RMS ``level``. The compute is the same."""
    first = codec.quantizer.layers[0].codebook  # the later stages hold residuals, about zero-mean
    offset = first.embed.mean(dim=0)
    codec.encoder.layers[-1].conv.bias.sub_(offset)
    first.embed.sub_(offset)
    first.embed_avg.copy_(first.embed)
    for name, p in codec.decoder.named_parameters():
        if "bias" in name:
            p.zero_()
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, codec.config.codebook_size, (len(codec.quantizer.layers), 1, 50), generator=g)
    rms = codec.decoder(codec.quantizer.decode(codes)).pow(2).mean().sqrt()
    if rms > 0:
        codec.decoder.layers[-1].conv.parametrizations.weight.original0.mul_(level / rms)  # weight norm's magnitude


@torch.no_grad()
def _init_codebooks_from_audio(codec, seed: int) -> None:
    """Fill EnCodec's codebooks the way its training starts them: with encoder outputs of audio.

    They start at zero (k-means fills them in training); left so, every piece of audio would
    encode to the same code and every code decode to the same sound. Tones of many pitches
    and loudnesses, plus noise, make latents that each residual stage samples its codes from,
    so that different sounds get different codes.
    """
    g = torch.Generator().manual_seed(seed)
    rate = codec.config.sampling_rate
    t = torch.arange(rate // 4) / rate  # 0.25 s each: enough latents, little compute at real size
    freqs = torch.logspace(math.log10(55), math.log10(7000), 48)
    tones = torch.sin(2 * math.pi * freqs[:, None] * t) * torch.rand(48, 1, generator=g)
    noise = torch.randn(16, len(t), generator=g) * torch.rand(16, 1, generator=g) * 0.3
    latents = codec.encoder(torch.cat([tones, noise])[:, None])  # (B, D, T)
    residual = latents.transpose(1, 2).reshape(-1, latents.shape[1])  # (N, D)
    for layer in codec.quantizer.layers:
        book = layer.codebook
        picks = torch.randint(0, len(residual), (book.embed.shape[0],), generator=g)
        book.embed.copy_(residual[picks] + 1e-3 * torch.randn(book.embed.shape, generator=g))
        book.embed_avg.copy_(book.embed)
        residual = residual - book.embed[torch.cdist(residual, book.embed).argmin(dim=1)]


def clip_vision_config(size: str = "tiny") -> CLIPVisionConfig:
    """``"tiny"`` for tests, or the shapes of ``openai/clip-vit-base-patch32``'s vision tower."""
    if size == "tiny":
        return CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=4, image_size=32, patch_size=8, projection_dim=24)
    return CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                            num_attention_heads=12, image_size=224, patch_size=32, projection_dim=512)


def random_clip(config: CLIPVisionConfig, seed: int = 0) -> CLIPVisionModelWithProjection:
    torch.manual_seed(seed)
    return CLIPVisionModelWithProjection(config).eval()


def clip_image_processor(image_size: int) -> CLIPImageProcessor:
    """CLIP's own preprocessing (resize shortest edge, centre crop, CLIP mean/std) at ``image_size``."""
    return CLIPImageProcessor(size={"shortest_edge": image_size},
                              crop_size={"height": image_size, "width": image_size})


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer with T5's special tokens (pad 0, eos 1, unk 2), for the tiny T5."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in _TINY_WORDS:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=512)


def save_musicgen(path, size: str = "tiny", stereo: bool = False, seed: int = 0) -> Path:
    """Write a random MusicGen folder that ``from_pretrained`` loads, with a tokenizer for tiny ones."""
    path = Path(path)
    random_musicgen(musicgen_config(size, stereo), seed).save_pretrained(path)
    if size == "tiny":
        tiny_tokenizer().save_pretrained(path)
    return path


def save_clip(path, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random CLIP vision tower with its image processor config."""
    path = Path(path)
    config = clip_vision_config(size)
    random_clip(config, seed).save_pretrained(path)
    clip_image_processor(config.image_size).save_pretrained(path)
    return path


def clap_config(size: str = "tiny"):
    """A CLAP config: ``"tiny"`` for tests (HTSAT and RoBERTa towers a few thousand weights each)."""
    from transformers import ClapConfig

    if size != "tiny":
        raise ValueError("only a tiny CLAP is built locally; real ones load by hub id (laion/clap-htsat-unfused)")
    audio = dict(spec_size=64, num_mel_bins=16, window_size=4, depths=[1, 1], num_attention_heads=[2, 2],
                 patch_embeds_hidden_size=16, hidden_size=32, projection_dim=24, patch_size=4, patch_stride=[4, 4])
    text = dict(vocab_size=128, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                max_position_embeddings=64, projection_dim=24, pad_token_id=0)
    return ClapConfig(text_config=text, audio_config=audio, projection_dim=24)


def save_clap(path, seed: int = 0, max_length_s: int = 2) -> Path:
    """Write a random CLAP folder (model, feature extractor at CLAP's 48 kHz, tokenizer) that
    ``ClapModel``/``AutoFeatureExtractor``/``AutoTokenizer.from_pretrained`` load offline.

    ``max_length_s``: the feature extractor's window (10 s for the published CLAPs; short here so
    that test audio spans several windows)."""
    from transformers import ClapFeatureExtractor, ClapModel

    path = Path(path)
    torch.manual_seed(seed)
    ClapModel(clap_config()).eval().save_pretrained(path)
    ClapFeatureExtractor(feature_size=16, sampling_rate=48000, hop_length=480, max_length_s=max_length_s,
                         truncation="rand_trunc", padding="repeatpad").save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def tiny_temporal_config(output_space: str = "t5") -> TemporalConfig:
    """A small temporal transformer that fits the tiny CLIP (24-d) and tiny MusicGen (T5 32-d, decoder 64-d)."""
    return TemporalConfig(feature_dim=24, d_model=32, num_layers=2, num_heads=4, ff_dim=64, dropout=0.1,
                          max_positions=512, output_space=output_space,
                          output_dim=_TINY_T5["d_model"] if output_space == "t5" else 64)


def write_tiny_bundle(folder, seed: int = 0) -> dict[str, Path]:
    """Write a complete offline model bundle into ``folder`` and return the model folders.

    ``musicgen-mono``/``musicgen-stereo`` (tiny MusicGen with tokenizer), ``clip`` (tiny CLIP) and
    two untrained video encoders naming them by relative path: ``video-encoder`` (mono) and
    ``video-encoder-stereo``. Random weights: the music is noise, but every command runs.
    """
    from .pipeline import VideoBGM
    from .temporal import TemporalTransformer

    folder = Path(folder)
    save_clip(folder / "clip", "tiny", seed)
    models = {}
    for name, stereo in (("video-encoder", False), ("video-encoder-stereo", True)):
        musicgen_dir = save_musicgen(folder / ("musicgen-stereo" if stereo else "musicgen-mono"), "tiny", stereo, seed)
        config = VideoModelConfig(
            musicgen=f"../{musicgen_dir.name}", fps=2.0, temporal=tiny_temporal_config(),
            frame_encoder=FrameEncoderConfig(kind="clip", name="../clip"),
        )
        torch.manual_seed(seed)
        model = VideoBGM(config, build_frame_encoder(config.frame_encoder, folder / name),
                         TemporalTransformer.for_model(config).eval(),
                         MusicGen.from_pretrained(str(musicgen_dir)))
        models[name] = model.save_pretrained(folder / name)
    return models
