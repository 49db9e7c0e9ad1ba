"""The ``data`` section of the training configuration: where the clips are and how they are split.

Shared by training (``train.config`` embeds it), evaluation (which reads a run's data section to find
its split's clips) and dataset preparation.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..config import from_dict

Layout = typing.Literal["videos_with_audio", "videos_and_wavs", "demucs", "manifest"]


@dataclass
class DataConfig:
    layout: Layout = "videos_with_audio"
    videos: str | None = None          # folder of videos (all layouts but "manifest")
    audio: str | None = None           # folder of WAVs ("videos_and_wavs") or of Demucs output ("demucs")
    manifest: str | None = None        # CSV or JSONL with columns video, audio (optional), caption (optional)
    recursive: bool = True             # look for videos in sub-folders too
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    segment_seconds: float = 10.0      # training crop length; shorter clips are padded and masked
    cache_dir: str | None = None       # feature cache (default: <output_dir>/cache)
    num_workers: int = 2               # parallel decoding while preparing the cache

    def validate(self) -> None:
        if self.layout == "manifest":
            if not self.manifest:
                raise ValueError("data.manifest: required when data.layout is 'manifest'")
        elif not self.videos:
            raise ValueError(f"data.videos: required when data.layout is {self.layout!r}")
        if self.layout in ("videos_and_wavs", "demucs") and not self.audio:
            raise ValueError(f"data.audio: required when data.layout is {self.layout!r}")
        for key in ("val_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"data.{key}: must be in [0, 1), got {getattr(self, key)}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("data.val_fraction + data.test_fraction: must leave clips for training")
        if not self.segment_seconds > 0:
            raise ValueError(f"data.segment_seconds: must be positive, got {self.segment_seconds}")
        if self.num_workers < 1:
            raise ValueError(f"data.num_workers: must be >= 1, got {self.num_workers}")


def load_run_data_config(path: str | Path) -> DataConfig:
    """The ``data`` section of a training run's saved config (``training_config.yaml``, written resolved)."""
    try:
        saved = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("data", {}), dict):
        raise ValueError("expected a mapping with a 'data' section")
    config = from_dict(DataConfig, saved.get("data", {}), "data.")
    config.validate()
    return config
