"""The settings of dataset preparation (light: the command line reads them before any heavy import)."""

from __future__ import annotations

import typing
from dataclasses import dataclass

from ..shots import DEFAULT_DETECTOR, DETECTORS
from .config import DataConfig

DEFAULT_DEMUCS = "htdemucs"
DEFAULT_CRF = 18          # x264's "visually lossless": the frame encoder sees what the source showed
DEFAULT_PRESET = "veryfast"
_DATA_DEFAULTS = DataConfig()  # the split training makes by default is the one recorded in the manifest


@dataclass
class PrepareSettings:
    clip_seconds: float = 30.0          # clip length (the thesis's)
    min_seconds: float = 5.0            # a shot's leftover shorter than this is dropped
    across_cuts: bool = False           # clips may span shot cuts (no shot detection)
    detector: typing.Literal["content", "adaptive"] = DEFAULT_DETECTOR
    threshold: float | None = None      # the detector's threshold (None: PySceneDetect's default)
    separate: typing.Literal["demucs", "none"] = "demucs"
    demucs_model: str = DEFAULT_DEMUCS
    demucs_repo: str | None = None      # a folder of Demucs model packages (Demucs's --repo)
    demucs_batch: int = 0               # clips per Demucs forward pass (0: 8 on a GPU, 1 on the CPU)
    device: str = "auto"                # Demucs's device: auto | cpu | cuda
    fps: float = 1.0                    # frames per second for the picture scores (the model's fps)
    min_loudness: float = -40.0         # LUFS: quieter music is dropped
    max_vocal_share: float = 0.5        # a larger share of the energy in the vocals stem is dropped
    min_motion: float = 0.005           # mean grey difference between sampled frames: lower is a still picture
    max_black_share: float = 0.5        # share of black sampled frames
    max_blank_share: float = 0.5        # share of uniform (blank) sampled frames
    max_duplicate_share: float = 0.5    # share of frames seen in an earlier clip of another source
    hash_distance: int = 8              # bits: frames this close are the same picture
    val_fraction: float = _DATA_DEFAULTS.val_fraction
    test_fraction: float = _DATA_DEFAULTS.test_fraction
    split_seed: int = _DATA_DEFAULTS.split_seed
    crf: int = DEFAULT_CRF
    preset: str = DEFAULT_PRESET

    def validate(self) -> None:
        if not self.clip_seconds > 0:
            raise ValueError(f"--clip-seconds: must be positive, got {self.clip_seconds}")
        if not 0 < self.min_seconds <= self.clip_seconds:
            raise ValueError(f"--min-seconds: must be in (0, clip seconds], got {self.min_seconds}")
        if self.detector not in DETECTORS:
            raise ValueError(f"--detector: one of {', '.join(DETECTORS)}, got {self.detector!r}")
        if self.separate not in ("demucs", "none"):
            raise ValueError(f"--separate: demucs or none, got {self.separate!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"--device: auto, cpu or cuda, got {self.device!r}")
        if not self.fps > 0:
            raise ValueError(f"--fps: must be positive, got {self.fps}")
        if self.demucs_batch < 0:
            raise ValueError(f"--demucs-batch: must be >= 0, got {self.demucs_batch}")
        DataConfig(videos=".", val_fraction=self.val_fraction, test_fraction=self.test_fraction).validate()
