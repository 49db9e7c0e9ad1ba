"""The README's "Train a tiny model in two minutes" recipe, run exactly as written, offline."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys

import yaml

from conftest import REPO
from video_bgm.random_models import tiny_temporal_config

HEADING = "### Train a tiny model in two minutes"


def recipe_commands() -> list[str]:
    """The command lines of the first code block under the recipe's heading in README.md."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"```\n(.*?)```", text[text.index(HEADING):], re.S)[1]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_tiny_config_fits_the_tiny_bundle():
    config = yaml.safe_load((REPO / "training_conf_tiny.yml").read_text())
    assert config["model"]["temporal"] == dataclasses.asdict(tiny_temporal_config())


def test_the_recipe_runs_as_written_and_learns(tmp_path):
    # the repository's files, in a fresh folder: what the commands write stays out of the checkout
    for name in ("code", "training_conf_tiny.yml"):
        (tmp_path / name).symlink_to(REPO / name)
    env = os.environ | {"PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    commands = recipe_commands()
    assert commands[-1].startswith("python code/training/training.py --config training_conf_tiny.yml"), commands
    for command in commands:
        result = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
    rows = [json.loads(line) for line in (tmp_path / "runs/tiny/metrics.jsonl").read_text().splitlines()]
    test = next(r for r in rows if r["split"] == "test")
    baseline = next(r for r in rows if r["split"] == "validation" and r["step"] == 0)
    assert abs(baseline["conditioning_gain"]) < 0.05 and test["conditioning_gain"] > 0.1, (baseline, test)
    assert (tmp_path / "runs/tiny/model/model.safetensors").is_file()
