"""The thesis's published checkpoints (``configuration.yml`` + ``lm_final.pt`` [+ ``musicgen_peft_final/``]).

``lm_final.pt`` is ``torch.save`` of the video model's state dict (see shared/thesis-checkpoints.md):
ResNet-50 (torchvision, no classifier) -> fixed sinusoidal positions -> post-norm ReLU
``nn.TransformerEncoder`` -> ``Linear(2048 -> D)``, whose 30 tokens go straight into MusicGen's
cross-attention ("decoder" space). It maps one to one onto our ``ResNet50FrameEncoder`` (weights
bundled) and ``TemporalTransformer`` (post-norm, ReLU, no input projection, no query tokens):

    video_feature_extractor.resnet.{0,1,4,5,6,7}.*     -> frame_encoder.{conv1,bn1,layer1..layer4}.*
    video_feature_extractor.positional_encoder.pe      -> checked against our sinusoidal table
    video_encoder.encoder.layers.{i}.*                 -> temporal.encoder.layers.{i}.*
    video_encoder.linear.*                             -> temporal.output_proj.*

The file is read with ``torch.load(weights_only=True, mmap=True)``: tensors only (a pickle that
would run code is refused), and a 14.7 GB file is mapped, not read into memory; keys outside
the video model (the large checkpoints carry more) are reported and skipped.

The model was trained on exactly 30 frames at t = 0..29 s; we keep it there (``num_frames=30``,
``short_clips="hold_last"``, see frame_window.py). Its frames were PIL images through torchvision's
IMAGENET1K_V2 preset, and so are ours for it (``frame_encoder.preprocessing="pil"``).
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch
import yaml

from .config import FrameEncoderConfig, TemporalConfig, VideoModelConfig
from .errors import ModelError
from .lora import LoraAdapter, read_adapter
from .model_folder import THESIS_FILES, ModelParts
from .refs import first_line
from .temporal import sinusoidal_positions

CONFIG_FILE, WEIGHTS_FILE = THESIS_FILES
ADAPTER_DIR = "musicgen_peft_final"

log = logging.getLogger(__name__)

_RESNET = "video_feature_extractor.resnet."
_POSITIONS = "video_feature_extractor.positional_encoder.pe"
_LAYERS = "video_encoder.encoder.layers."
_LINEAR = "video_encoder.linear."
# children of nn.Sequential(*list(resnet50().children())[:-1]) that hold weights
_RESNET_CHILDREN = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}
_INT_KEYS = ("video_extraction_framerate", "encoder_input_dimension", "encoder_dim_feedforward",
             "encoder_heads", "encoder_layers")

# Decoder widths of the published MusicGens, so a mismatch shows without downloading them.
MUSICGEN_WIDTHS = {f"facebook/musicgen-{stereo}{size}": width
                   for size, width in (("small", 1024), ("medium", 1536), ("large", 2048))
                   for stereo in ("", "stereo-")}


def read_training_config(folder: Path) -> dict:
    """configuration.yml (OmegaConf-written YAML; plain YAML suffices) with the keys we need checked."""
    try:
        config = yaml.safe_load((folder / CONFIG_FILE).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ModelError(folder, f"{CONFIG_FILE} cannot be read ({first_line(err)})") from None
    if not isinstance(config, dict):
        raise ModelError(folder, f"{CONFIG_FILE}: expected a mapping of training options")
    for key in (*_INT_KEYS, "musicgen_model_id"):
        if key not in config:
            raise ModelError(folder, f"{CONFIG_FILE}: missing key {key!r}")
    for key in _INT_KEYS:
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ModelError(folder, f"{CONFIG_FILE}: {key} must be a positive integer, got {value!r}")
    if not isinstance(config["musicgen_model_id"], str):
        raise ModelError(folder, f"{CONFIG_FILE}: musicgen_model_id must be a string")
    return config


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """``torch.load`` that only ever builds tensors, memory-mapped when the file allows it."""
    folder, name = path.parent, path.name
    if not path.is_file():
        raise ModelError(folder, f"missing {name}")
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) files
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err):
            raise ModelError(folder, f"{name} holds more than tensors: unpickling it would run code, so it is "
                                     "refused (only plain state dicts load)") from None
        raise ModelError(folder, f"{name} cannot be read (truncated or not a torch checkpoint: {first_line(err)})") from None
    except Exception as err:  # truncated zip archives, garbage: torch raises RuntimeError, EOFError, ...
        raise ModelError(folder, f"{name} cannot be read (truncated or not a torch checkpoint: {first_line(err)})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ModelError(folder, f"{name} is not a state dict (a mapping of names to tensors)")
    return state


def musicgen_width(ref: str) -> int | None:
    """A MusicGen's decoder width, when known without loading it (published ids, local folders)."""
    if ref in MUSICGEN_WIDTHS:
        return MUSICGEN_WIDTHS[ref]
    config = Path(ref).expanduser() / "config.json"
    if config.is_file():
        import json

        try:
            return int(json.loads(config.read_text())["decoder"]["hidden_size"])
        except (ValueError, KeyError, TypeError):
            return None
    return None


def read_checkpoint(folder: Path, musicgen: str | None = None) -> ModelParts:
    """A thesis folder as model parts; ``musicgen`` replaces the MusicGen that configuration.yml names."""
    folder = Path(folder)
    training = read_training_config(folder)
    state = load_state_dict(folder / WEIGHTS_FILE)

    frame_state, temporal_state, other = {}, {}, []
    for key, tensor in state.items():
        if key.startswith(_RESNET):
            child, _, rest = key[len(_RESNET):].partition(".")
            if child not in _RESNET_CHILDREN:
                raise ModelError(folder, f"{WEIGHTS_FILE}: unexpected ResNet weight {key}")
            frame_state[f"{_RESNET_CHILDREN[child]}.{rest}"] = tensor
        elif key.startswith(_LAYERS):
            temporal_state[f"encoder.layers.{key[len(_LAYERS):]}"] = tensor
        elif key.startswith(_LINEAR):
            temporal_state[f"output_proj.{key[len(_LINEAR):]}"] = tensor
        elif key == _POSITIONS:
            pass
        elif key.startswith(("video_encoder.", "video_feature_extractor.")):  # part of the model we would drop
            raise ModelError(folder, f"{WEIGHTS_FILE}: unexpected video-model weight {key} (not the thesis's layout)")
        else:
            other.append(key)
    if other:
        log.warning("%s: %s holds %d tensors outside the video model (e.g. %s); they are not needed and were skipped",
                    folder, WEIGHTS_FILE, len(other), other[0])
    for needed in (_POSITIONS, f"{_LAYERS}0.self_attn.in_proj_weight", f"{_LINEAR}weight", f"{_RESNET}0.weight"):
        if needed not in state:
            raise ModelError(folder, f"{WEIGHTS_FILE}: missing {needed} (not a thesis video-model checkpoint)")

    config = _model_config(folder, training, state, musicgen)
    frame_state = _with_batch_counters(frame_state)
    adapter = _read_adapter(folder, training)
    info = {"source": str(folder), "training": training}
    return ModelParts(config, temporal_state, frame_state, adapter, info)


def _model_config(folder: Path, training: dict, state: dict, musicgen: str | None) -> VideoModelConfig:
    """Our config for the checkpoint, with configuration.yml's dimensions checked against the weights."""
    d, ff = training["encoder_input_dimension"], training["encoder_dim_feedforward"]
    heads, layers = training["encoder_heads"], training["encoder_layers"]
    in_proj = state[f"{_LAYERS}0.self_attn.in_proj_weight"]
    found_layers = len({k[len(_LAYERS):].split(".")[0] for k in state if k.startswith(_LAYERS)})
    linear1 = state.get(f"{_LAYERS}0.linear1.weight")
    out = state[f"{_LINEAR}weight"]
    pe = state[_POSITIONS]

    def mismatch(what: str, config_value, weights_value) -> ModelError:
        return ModelError(folder, f"{CONFIG_FILE} says {what} {config_value} but {WEIGHTS_FILE} has {weights_value}")

    if tuple(in_proj.shape) != (3 * d, d):
        raise mismatch("encoder_input_dimension", d, f"width {in_proj.shape[1]}")
    if found_layers != layers:
        raise mismatch("encoder_layers", layers, f"{found_layers} layers")
    if linear1 is None or tuple(linear1.shape) != (ff, d):
        raise mismatch("encoder_dim_feedforward", ff, f"linear1 of shape {None if linear1 is None else tuple(linear1.shape)}")
    if d % heads:
        raise ModelError(folder, f"{CONFIG_FILE}: encoder_heads {heads} does not divide encoder_input_dimension {d}")
    if out.dim() != 2 or out.shape[1] != d:
        raise mismatch("encoder_input_dimension", d, f"video_encoder.linear of shape {tuple(out.shape)}")
    if pe.dim() != 3 or pe.shape[1] != 1 or pe.shape[2] != d:
        raise mismatch("encoder_input_dimension", d, f"a positional table of shape {tuple(pe.shape)}")
    positions = pe.shape[0]
    if (pe[:, 0].float() - sinusoidal_positions(positions, d)).abs().max() > 1e-4:
        raise ModelError(folder, f"{WEIGHTS_FILE}: the positional table is not the sinusoidal one this loader implements")

    musicgen_ref = musicgen or training["musicgen_model_id"]
    width = musicgen_width(musicgen_ref)
    if width is not None and width != out.shape[0]:
        raise ModelError(folder, f"{WEIGHTS_FILE} makes {out.shape[0]}-d tokens but {musicgen_ref}'s decoder "
                                 f"width is {width}")
    temporal = TemporalConfig(
        feature_dim=d, d_model=d, num_layers=layers, num_heads=heads, ff_dim=ff, dropout=0.1, activation="relu",
        norm_first=False, num_tokens=0, max_positions=positions, output_space="decoder", output_dim=out.shape[0],
    )
    frame_encoder = FrameEncoderConfig(kind="resnet50", name="bundled", preprocessing="pil")
    config = VideoModelConfig(musicgen=musicgen_ref, frame_encoder=frame_encoder,
                              fps=float(training["video_extraction_framerate"]), num_frames=positions,
                              short_clips="hold_last", temporal=temporal)
    config.validate()
    return config


def _with_batch_counters(frame_state: dict) -> dict:
    """BatchNorm's ``num_batches_tracked`` counters do not affect inference; add any the file lacks."""
    counters = {k[: -len("running_mean")] + "num_batches_tracked": torch.tensor(0)
                for k in frame_state if k.endswith("running_mean")}
    return {**counters, **frame_state}


def _read_adapter(folder: Path, training: dict) -> LoraAdapter | None:
    adapter_dir = folder / ADAPTER_DIR
    if not adapter_dir.is_dir():
        if training.get("use_peft"):
            raise ModelError(folder, f"{CONFIG_FILE} says use_peft but there is no {ADAPTER_DIR}/ folder")
        return None
    # configuration.yml's LoRA settings stand in only when the adapter lacks its own config
    defaults = {"r": training.get("lora_r"), "lora_alpha": training.get("lora_alpha"),
                "lora_dropout": training.get("lora_dropout")}
    return read_adapter(adapter_dir, defaults if defaults["r"] and defaults["lora_alpha"] else None)


def convert(folder: Path, out: Path, musicgen: str | None = None, source: str | None = None) -> Path:
    """Write a thesis folder in our format (safetensors + config.json + adapter + model card): no pickle after this."""
    from . import model_card
    from .model_folder import write_parts

    parts = read_checkpoint(Path(folder), musicgen)
    if source:
        parts.info["source"] = source
    card = model_card.render(parts.config, parts.info, parts.adapter, name=Path(out).name)
    return write_parts(out, parts, card)
