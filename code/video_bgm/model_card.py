"""A model card (the hub's README.md) generated from a model's config and provenance."""

from __future__ import annotations

import yaml

from .config import VideoModelConfig
from .hub import looks_like_repo_id
from .lora import LoraAdapter

_LICENCES = {"facebook/musicgen": "cc-by-nc-4.0"}  # Meta's MusicGen weights are non-commercial


def render(config: VideoModelConfig, info: dict | None = None, adapter: LoraAdapter | None = None,
           name: str = "video-to-music model") -> str:
    """Markdown with YAML front matter: base models, frame encoder, video encoder, training config, metrics."""
    from huggingface_hub import ModelCardData

    info = info or {}
    fe, t = config.frame_encoder, config.temporal
    base_models = [ref for ref in (config.musicgen, fe.name if fe.kind == "clip" else None)
                   if ref and looks_like_repo_id(ref)]
    licence = next((lic for prefix, lic in _LICENCES.items() if config.musicgen.startswith(prefix)), None)
    data = ModelCardData(license=licence, library_name="video-to-music", base_model=base_models or None,
                         tags=["video-to-music", "music-generation", "musicgen", "background-music"])
    frame_encoder = (f"CLIP `{fe.name}` (image embeddings)" if fe.kind == "clip"
                     else f"ResNet-50 (torchvision, {'weights bundled in model.safetensors' if fe.name == 'bundled' else fe.name})")
    frames = (f"{config.fps:g} frame(s) per second" if not config.num_frames else
              f"always {config.num_frames} positions at {config.fps:g} fps (shorter clips: {config.short_clips}; "
              "longer clips: frames spread evenly)")
    lines = [
        f"# {name}", "",
        "Background music for videos (video-to-music): a frozen MusicGen conditioned on a trained video "
        "encoder, which turns a video's frames into tokens that MusicGen's decoder attends to.", "",
        "## Base models", "",
        f"- MusicGen: `{config.musicgen}`" + (f" (revision `{config.musicgen_revision}`)" if config.musicgen_revision else ""),
        f"- Frame encoder: {frame_encoder}",
    ]
    if adapter is not None:
        lines.append(f"- LoRA adapter on MusicGen's decoder (`musicgen_adapter/`): r={adapter.r}, alpha={adapter.alpha:g}, "
                     f"{len(adapter.weights)} layers")
    lines += [
        "", "## Video encoder", "",
        "| setting | value |", "| --- | --- |",
        f"| frames | {frames} |",
        f"| temporal transformer | {t.num_layers} layers, d={t.d_model}, {t.num_heads} heads, ff {t.ff_dim}, "
        f"{t.activation}, {'pre' if t.norm_first else 'post'}-norm |",
        f"| tokens | {t.num_tokens or 'one per frame'}, {t.output_dim}-d in {t.output_space!r} space |",
    ]
    if info.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- **Warning:** {w}" for w in info["warnings"]]
    if info.get("source"):
        lines += ["", "## Source", "", str(info["source"])]
    if info.get("training"):
        lines += ["", "## Training configuration", "", "```yaml",
                  yaml.safe_dump(info["training"], sort_keys=True, default_flow_style=False).rstrip(), "```"]
    if info.get("metrics"):
        lines += ["", "## Metrics", "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in sorted(info["metrics"].items())]
    lines += [
        "", "## Usage", "",
        "```", "python code/inference/generate.py clip.mp4 --model THIS_REPO_OR_FOLDER --out clip_music.mp4", "```", "",
        "## Licence", "",
        (f"The weights inherit MusicGen's licence ({licence}); music generated with them inherits that restriction."
         if licence else "Check the licences of the base models above."),
    ]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"
