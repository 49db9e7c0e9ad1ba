"""The training configuration: defaults, errors that name the key, overrides, YAML 1.2 values."""

from __future__ import annotations

import pytest

from conftest import REPO
from training_helpers import training_main
from video_bgm.train.config import load_train_config


def test_top_level_config_loads_with_the_design_card_defaults():
    config = load_train_config(REPO / "training_conf.yml")
    assert config.model.frame_encoder.name == "openai/clip-vit-base-patch32"
    assert config.model.musicgen == "facebook/musicgen-small"
    assert config.model.temporal.output_space == "t5" and config.model.temporal.output_dim == 768


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "unknown key 'train.lrr'"),
    ("train.batch_size=two", "train.batch_size: expected int"),
    ("train.batch_size=0", "train.batch_size: must be >= 1"),
    ("data.val_fraction=0.95", "data.val_fraction + data.test_fraction"),
    ("model.temporal.num_heads=7", "model.temporal.num_heads: 7 does not divide"),
    ("data.layout=zip", "data.layout: 'zip' is not one of"),
    ("train.mixed_precision=fp8", "train.mixed_precision: 'fp8' is not one of"),
])
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("+", r"\+")):
        load_train_config(REPO / "training_conf.yml", [override])


def test_overrides_and_yaml_exponents(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("train:\n  lr: 3e-4\n")
    config = load_train_config(path, ["train.max_steps=7", "data.videos=clips"])
    assert (config.train.lr, config.train.max_steps, config.data.videos) == (3e-4, 7, "clips")


def test_cli_reports_config_errors_in_one_line(tmp_path):
    assert training_main("--config", REPO / "training_conf.yml", "--set", "train.lrr=1") == 1


def test_documented_yaml_values_work_unquoted(tmp_path):
    path = tmp_path / "conf.yml"
    path.write_text("data:\n  videos: v\ntrain:\n  mixed_precision: no\n")  # as training_conf.yml's comment lists it
    assert load_train_config(path).train.mixed_precision == "no"
    assert load_train_config(None, ["data.videos=v", "train.mixed_precision=no"]).train.mixed_precision == "no"
    path.write_text("data:\n  recursive: no\n  videos: v\n")  # a YAML 1.1 boolean is not silently read
    with pytest.raises(ValueError, match="data.recursive: expected bool, got 'no'"):
        load_train_config(path)
