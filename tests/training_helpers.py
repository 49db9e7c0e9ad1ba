"""Helpers shared by the training tests: a tiny config, training.py's main in-process, paired clips."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from conftest import load_script
from video_bgm.random_models import tiny_temporal_config
from video_bgm.synthetic import write_paired_clips


def paired_clips(folder: Path, count: int, duration: float = 3.0) -> Path:
    """Videos whose colour picks the pitch of their tone: the music depends on the video."""
    return write_paired_clips(folder, count, duration)


def tiny_config(tmp: Path, bundle: dict, videos: Path, **train) -> Path:
    """A training config for the tiny bundle, written as YAML; ``train`` overrides train.* keys."""
    tiny = Path(bundle["video-encoder"]).parent
    config = {
        "output_dir": str(tmp / "run"), "device": "cpu", "seed": 0,
        "data": {"layout": "videos_with_audio", "videos": str(videos), "segment_seconds": 2.0,
                 "val_fraction": 0.25, "test_fraction": 0.25, "cache_dir": str(tmp / "cache"), "num_workers": 2},
        "model": {"musicgen": str(tiny / "musicgen-mono"), "frame_encoder": {"kind": "clip", "name": str(tiny / "clip")},
                  "fps": 2.0, "temporal": dataclasses.asdict(tiny_temporal_config())},
        "train": {"batch_size": 4, "max_steps": 20, "lr": 3e-3, "warmup_steps": 5, "eval_every": 10,
                  "save_every": 5, "log_every": 5, "mixed_precision": "no", **train},
    }
    path = tmp / "conf.yml"
    path.write_text(yaml.safe_dump(config))
    return path


training_cli = load_script("code/training/training.py")


def training_main(*argv) -> int:
    """training.py's main in-process, as its command line runs it; output goes to capsys."""
    from video_bgm.cli import run

    with pytest.raises(SystemExit) as exit_info:
        run(lambda: training_cli.main([str(a) for a in argv] + ["--quiet"]), "training.py")
    return exit_info.value.code


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]
