"""The training configuration: ``training_conf.yml`` loaded into typed, validated dataclasses.

Unknown keys, wrong types and impossible values raise ``ValueError`` naming the key;
``--set key=value`` overrides any key (``train.lr=3e-4``, ``data.videos=clips/``).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import VideoModelConfig, from_dict
from ..data.config import DataConfig

class _Loader(yaml.SafeLoader):
    """YAML 1.2's reading of plain values where PyYAML follows YAML 1.1: ``3e-4`` is the float everyone
    means, and only true/false are booleans, so ``mixed_precision: no`` is the string "no" it documents
    (YAML 1.1 reads yes/no/on/off as booleans)."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)

@dataclass
class OptimConfig:
    batch_size: int = 4
    grad_accum_steps: int = 1
    max_steps: int = 20000             # optimizer steps
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 500            # linear warm-up, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0             # max global norm of the video encoder's gradients (0: off)
    mixed_precision: typing.Literal["no", "bf16", "fp16"] = "bf16"  # GPU only; CPU always trains in fp32
    eval_every: int = 500
    save_every: int = 500
    keep_last: int = 3                 # step checkpoints kept, besides the best
    early_stopping_patience: int = 10  # evaluations without a better validation score (0: off)
    best_by: typing.Literal["loss", "gain"] = "loss"  # the best checkpoint: lowest validation loss, or highest conditioning gain
    log_every: int = 10

    def validate(self) -> None:
        for key in ("batch_size", "grad_accum_steps", "max_steps", "eval_every", "save_every",
                    "keep_last", "log_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"train.{key}: must be >= 1, got {getattr(self, key)}")
        if not self.lr > 0:
            raise ValueError(f"train.lr: must be positive, got {self.lr}")
        for key in ("weight_decay", "grad_clip", "warmup_steps", "early_stopping_patience"):
            if getattr(self, key) < 0:
                raise ValueError(f"train.{key}: must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"train.min_lr_ratio: must be in [0, 1], got {self.min_lr_ratio}")
        try:
            self.betas = tuple(float(b) for b in self.betas)
        except (TypeError, ValueError):
            raise ValueError(f"train.betas: expected two numbers, got {self.betas!r}") from None
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"train.betas: two values in [0, 1), got {self.betas}")


@dataclass
class TrainConfig:
    output_dir: str = "runs/video-encoder"   # model, checkpoints, logs, split and cache go here
    seed: int = 0
    device: str = "auto"                     # auto | cpu | cuda (accelerate launch picks devices itself)
    wandb_project: str | None = None         # log to Weights & Biases too (needs `pip install wandb`)
    data: DataConfig = field(default_factory=DataConfig)
    model: VideoModelConfig = field(default_factory=VideoModelConfig)
    train: OptimConfig = field(default_factory=OptimConfig)

    def validate(self) -> None:
        self.data.validate()
        try:
            self.model.validate()
        except ValueError as err:
            raise ValueError(f"model.{err}") from None
        self.train.validate()

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))


def _plain(value):
    """Tuples become lists so that the YAML dump stays readable and loads back the same."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_train_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML config, apply ``key=value`` overrides, validate. Errors name file and key."""
    data: dict = {}
    if path is not None:
        try:
            data = yaml.load(Path(path).read_text(), Loader=_Loader) or {}
        except FileNotFoundError:
            raise ValueError(f"{path}: file not found") from None
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of keys at the top level")
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected key=value")
        _set_path(data, key.strip().split("."), yaml.load(raw, Loader=_Loader) if raw.strip() else None)
    config = from_dict(TrainConfig, data)
    config.validate()
    return config


def _set_path(data: dict, keys: list[str], value) -> None:
    for key in keys[:-1]:
        data = data.setdefault(key, {})
        if not isinstance(data, dict):
            raise ValueError(f"--set {'.'.join(keys)}: {key} is not a section")
    data[keys[-1]] = value


def dump_train_config(config: TrainConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
