"""Test helpers: an independent reference of the thesis's video model, written from
shared/thesis-checkpoints.md and the frame path of the thesis's published training_utils.py
(not from our loader), files in the thesis's exact layout, and a Hugging Face cache laid out as
huggingface_hub lays it out.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import av
import numpy as np
import torch
import yaml
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

# Small synthetic shapes with the thesis's layout: the ResNet's 2048-d features go straight into the
# encoder (no input projection), so the width stays 2048; layers, heads and ff are made small.
D_ENCODER, HEADS, FF, LAYERS, POSITIONS = 2048, 4, 64, 1, 30


class PositionalEncoding(nn.Module):
    """The fixed sinusoidal table, sequence-first: pe [max_len, 1, d]."""

    def __init__(self, d: int, max_len: int = POSITIONS):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
        pe = torch.zeros(max_len, 1, d)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):  # (T, B, d)
        return x + self.pe[: x.size(0)]


class FeatureExtractor(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.resnet = nn.Sequential(*list(resnet50().children())[:-1])  # torchvision ResNet-50 without fc
        self.positional_encoder = PositionalEncoding(d)


class VideoEncoder(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, layers: int, out_dim: int):
        super().__init__()
        # post-norm, ReLU, dropout 0.1, sequence-first: nn.TransformerEncoderLayer's defaults
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, heads, ff, 0.1), layers,
                                             enable_nested_tensor=False)
        self.linear = nn.Linear(d, out_dim)


def thesis_frames(path) -> tuple[torch.Tensor, list[int]]:
    """A video's frames, RGB uint8 [n, H, W, 3] decoded with PyAV (FFmpeg's rgb24 conversion, as
    moviepy's ffmpeg pipe did), and which of them the thesis's ``VideoFileClip.get_frame(i)`` gave for
    i = 0..29 s: the frame shown at t = i; past the video's end, moviepy 1.0.3 returned the last frame
    it had returned, i.e. that of the video's last whole second."""
    with av.open(str(path)) as container:
        duration = container.duration / av.time_base
        decoded = [(frame.time, frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]
    times = np.array([t for t, _ in decoded])
    last_second = max(math.ceil(duration) - 1, 0)
    shown = [max(int(np.searchsorted(times, min(t, last_second) + 1e-6, side="right")) - 1, 0)
             for t in range(POSITIONS)]
    return torch.from_numpy(np.stack([rgb for _, rgb in decoded])), shown


def thesis_pixels(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] -> [T, 3, 224, 224]: each frame a PIL image through the IMAGENET1K_V2
    preset, as the thesis's VideoFeatureExtractor did (``Image.fromarray``, then the preset)."""
    preset = ResNet50_Weights.IMAGENET1K_V2.transforms()
    return torch.stack([preset(Image.fromarray(frame)) for frame in frames.numpy()])


class ThesisVideoModel(nn.Module):
    """frames -> ResNet-50 (PIL images, IMAGENET1K_V2 preset) -> + positions -> encoder -> Linear(d -> D)."""

    def __init__(self, out_dim: int, d: int = D_ENCODER, heads: int = HEADS, ff: int = FF, layers: int = LAYERS):
        super().__init__()
        self.video_feature_extractor = FeatureExtractor(d)
        self.video_encoder = VideoEncoder(d, heads, ff, layers, out_dim)

    @torch.no_grad()
    def frame_features(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames [T, H, W, 3] -> ResNet features [T, 2048]."""
        return self.video_feature_extractor.resnet(thesis_pixels(frames)).flatten(1)

    @torch.no_grad()
    def video_tokens(self, path) -> torch.Tensor:
        """What the thesis's generate_background_music conditioned MusicGen on for a video file:
        tokens [1, 30, D] of its frames at t = 0..29 s (in eval mode: the thesis left dropout on)."""
        frames, shown = thesis_frames(path)
        used = sorted(set(shown))  # each distinct frame through the ResNet once (the thesis ran all 30)
        features = self.frame_features(frames[used])
        return self.tokens(features[[used.index(i) for i in shown]])

    @torch.no_grad()
    def tokens(self, features: torch.Tensor) -> torch.Tensor:
        """features [T, 2048] -> conditioning tokens [1, T, D] (batch of one)."""
        x = self.video_feature_extractor.positional_encoder(features[:, None])  # (T, 1, d)
        x = self.video_encoder.encoder(x)
        return self.video_encoder.linear(x).transpose(0, 1)


def random_thesis_model(out_dim: int, seed: int = 0) -> ThesisVideoModel:
    torch.manual_seed(seed)
    model = ThesisVideoModel(out_dim).eval()
    for module in model.modules():  # non-trivial BatchNorm statistics, so a mis-mapped layer shows
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.1)
    return model


def training_config(musicgen: str, **overrides) -> dict:
    config = {
        "video_extraction_framerate": 1, "encoder_input_dimension": D_ENCODER, "encoder_dim_feedforward": FF,
        "encoder_heads": HEADS, "encoder_layers": LAYERS, "musicgen_model_id": musicgen,
        "use_peft": False, "lora_r": 16, "lora_alpha": 16, "lora_dropout": 0.1,
        "learning_rate": 1e-5, "batch_size": 4, "wandb_project": "thesis", "dataset_path": "/data/nature",
    }
    config.update(overrides)
    return config


def write_thesis_folder(folder: Path, model: ThesisVideoModel, config: dict, extra: dict | None = None) -> Path:
    """configuration.yml + lm_final.pt (torch.save of the state dict, plus ``extra`` tensors)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "configuration.yml").write_text(yaml.safe_dump(config))
    state = dict(model.state_dict())
    state.update(extra or {})
    torch.save(state, folder / "lm_final.pt")
    return folder


# audiocraft's LM module names (per layer) and their transformers counterparts, from the format notes
AUDIOCRAFT_MODULES = {
    "self_attn.out_proj": "self_attn.out_proj",
    "cross_attention.out_proj": "encoder_attn.out_proj",
    "linear1": "fc1",
    "linear2": "fc2",
}


def write_audiocraft_adapter(folder: Path, decoder, r: int = 4, alpha: float = 8.0, seed: int = 1,
                             trained: bool = True) -> dict:
    """A PEFT LoRA adapter as saved from audiocraft's LM, shaped for ``decoder`` (transformers'
    MusicgenForCausalLM). Returns {transformers module name: (A, B)} for the reference.

    ``trained=False``: B stays at PEFT's initial zeros, as in the thesis's adapters (its optimizer
    held only the video encoder's parameters)."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    state, reference = {}, {}
    for i, layer in enumerate(decoder.model.decoder.layers):
        for audiocraft, ours in AUDIOCRAFT_MODULES.items():
            linear = layer.get_submodule(ours)
            a = torch.randn(r, linear.in_features) * 0.1
            b = torch.randn(linear.out_features, r) * 0.1 if trained else torch.zeros(linear.out_features, r)
            state[f"base_model.model.transformer.layers.{i}.{audiocraft}.lora_A.weight"] = a
            state[f"base_model.model.transformer.layers.{i}.{audiocraft}.lora_B.weight"] = b
            reference[f"model.decoder.layers.{i}.{ours}"] = (a, b)
    save_file(state, folder / "adapter_model.safetensors")
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": r, "lora_alpha": alpha, "lora_dropout": 0.1,
        "target_modules": ["out_proj", "linear1", "linear2"], "bias": "none", "fan_in_fan_out": False,
        "base_model_name_or_path": None, "task_type": None, "use_rslora": False, "use_dora": False,
        "inference_mode": True,
    }))
    return reference


def merge_reference_lora(decoder, reference: dict, scale: float) -> None:
    """W += scale * B @ A on each adapted Linear: what a LoRA adapter means."""
    with torch.no_grad():
        for name, (a, b) in reference.items():
            decoder.get_submodule(name).weight += scale * (b @ a)


def write_hub_cache(cache: Path, repo_id: str, files: dict[str, Path], commit: str,
                    refs: tuple[str, ...] = ("main",)) -> Path:
    """Lay ``files`` (repo path -> local file) out as huggingface_hub caches a repo:
    models--owner--name/{blobs/<hash>, refs/<name> (the commit), snapshots/<commit>/<path> -> blob}."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (root / "refs" / ref).write_text(commit)
    snapshot = root / "snapshots" / commit
    for path, source in files.items():
        digest = hashlib.sha256(f"{repo_id}/{commit}/{path}".encode()).hexdigest()
        blob = root / "blobs" / digest
        if not blob.exists():
            os.link(source, blob) if _same_device(source, blob) else blob.write_bytes(Path(source).read_bytes())
        link = snapshot / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot


def _same_device(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b.parent).st_dev


def folder_files(folder: Path, prefix: str = "") -> dict[str, Path]:
    """Every file under ``folder`` as {prefix/relative path: path}."""
    return {f"{prefix}{p.relative_to(folder).as_posix()}": p for p in sorted(folder.rglob("*")) if p.is_file()}
