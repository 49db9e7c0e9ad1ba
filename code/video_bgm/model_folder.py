"""Our model format on disk: read and write a model folder.

    config.json          VideoModelConfig (which frozen models, frames, the temporal transformer)
    model.safetensors    temporal.* (and frame_encoder.* when bundled); its metadata carries the
                         model's provenance (source, training config, metrics) as JSON
    musicgen_adapter/    a PEFT LoRA adapter on MusicGen's decoder, when the model has one
    README.md            a model card (written for the hub, see model_card.py)

No pickle anywhere: safetensors and JSON only. Every file appears whole or not at all.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from .config import VideoModelConfig, from_dict
from .errors import ModelError
from .lora import LoraAdapter, read_adapter
from .outputs import write_atomic
from .refs import first_line

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ADAPTER_DIR = "musicgen_adapter"
CARD_NAME = "README.md"
THESIS_FILES = ("configuration.yml", "lm_final.pt")  # what makes a thesis checkpoint folder (see thesis.py)
_INFO_KEY = "video_bgm.info"


@dataclass
class ModelParts:
    """Everything a model folder (ours or a thesis one) holds, before the frozen models are loaded.

    ``info``: provenance for the model card: ``source`` (str), ``training`` (dict), ``metrics`` (dict).
    """

    config: VideoModelConfig
    temporal_state: dict[str, torch.Tensor]
    frame_state: dict[str, torch.Tensor] = field(default_factory=dict)
    adapter: LoraAdapter | None = None
    info: dict = field(default_factory=dict)


def folder_kind(folder) -> str | None:
    """``"ours"``, ``"thesis"`` or None: the one answer to "is this a model folder?" that the loader,
    the app's model list and the tools all use. Ours: a config.json that reads as our config (a
    MusicGen's or CLIP's config.json does not); thesis: its two files and no config.json."""
    folder = Path(folder)
    if (folder / CONFIG_NAME).is_file():
        try:
            read_config(folder)
        except (ModelError, OSError, UnicodeDecodeError):
            return None
        return "ours"
    return "thesis" if all((folder / name).is_file() for name in THESIS_FILES) else None


def read_config(folder: Path) -> VideoModelConfig:
    try:
        config = from_dict(VideoModelConfig, json.loads((folder / CONFIG_NAME).read_text()))
        config.validate()
    except json.JSONDecodeError as err:
        raise ModelError(folder, f"{CONFIG_NAME} is not valid JSON ({err})") from None
    except ValueError as err:
        raise ModelError(folder, f"{CONFIG_NAME}: {err}") from None
    return config


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    path = folder / WEIGHTS_NAME
    if not path.is_file():
        raise ModelError(folder, f"missing {WEIGHTS_NAME}")
    try:
        return load_file(path)
    except Exception as err:  # safetensors raises its own error types for truncated files
        raise ModelError(folder, f"{WEIGHTS_NAME} cannot be read ({first_line(err)})") from None


def read_info(folder: Path) -> dict:
    try:
        with safe_open(folder / WEIGHTS_NAME, "pt") as f:
            return json.loads((f.metadata() or {}).get(_INFO_KEY, "{}"))
    except (OSError, ValueError):
        return {}


def read_parts(folder: Path) -> ModelParts:
    """Our format: config.json + model.safetensors (+ musicgen_adapter/)."""
    config = read_config(folder)
    state = read_weights(folder)
    parts = ModelParts(
        config,
        temporal_state={k[len("temporal."):]: v for k, v in state.items() if k.startswith("temporal.")},
        frame_state={k[len("frame_encoder."):]: v for k, v in state.items() if k.startswith("frame_encoder.")},
        info=read_info(folder),
    )
    if config.musicgen_adapter:
        adapter_dir = (folder / config.musicgen_adapter).resolve()
        if not adapter_dir.is_dir():
            raise ModelError(folder, f"{CONFIG_NAME}: musicgen_adapter {config.musicgen_adapter!r} is not a folder")
        parts.adapter = read_adapter(adapter_dir)
    return parts


def write_parts(folder: str | os.PathLike, parts: ModelParts, card: str | None = None) -> Path:
    """Write a model folder; ``card`` (markdown) becomes its README.md."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = parts.config
    config.musicgen_adapter = ADAPTER_DIR if parts.adapter is not None else None
    state = {f"temporal.{k}": v.detach().cpu().contiguous() for k, v in parts.temporal_state.items()}
    if config.frame_encoder.name == "bundled":
        state.update({f"frame_encoder.{k}": v.detach().cpu().contiguous() for k, v in parts.frame_state.items()})
    metadata = {"format": "pt"}
    if parts.info:
        metadata[_INFO_KEY] = json.dumps(parts.info, default=str)
    if parts.adapter is not None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{ADAPTER_DIR}.", dir=folder))
        try:
            parts.adapter.save(tmp, base_model=config.musicgen)
            _replace_dir(tmp, folder / ADAPTER_DIR)
        finally:
            if tmp.exists():
                _remove_tree(tmp)
    # Serialised in memory and written by Python: a full disk is then an OSError with its cause
    # (safetensors' own writer raises its own error type), which write_atomic reports in one line.
    write_atomic(folder / WEIGHTS_NAME, save(state, metadata=metadata))
    write_atomic(folder / CONFIG_NAME, json.dumps(config.to_dict(), indent=2) + "\n")
    if card is not None:
        write_atomic(folder / CARD_NAME, card)
    return folder


def _replace_dir(src: Path, dst: Path) -> None:
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old")
        _remove_tree(old)
        os.replace(dst, old)
        os.replace(src, dst)
        _remove_tree(old)
    else:
        os.replace(src, dst)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
