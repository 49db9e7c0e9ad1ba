"""Configs: unknown keys, wrong types and impossible values are errors that name the key."""

import dataclasses

import pytest

from video_bgm.config import FrameEncoderConfig, GenerationParams, VideoModelConfig, from_dict


def test_round_trip_of_defaults():
    config = VideoModelConfig()
    assert from_dict(VideoModelConfig, config.to_dict()) == config


def test_a_config_without_preprocessing_keeps_the_tensor_path():
    """Folders written before the key existed load as they did (frames resized on tensors)."""
    config = from_dict(VideoModelConfig, {"frame_encoder": {"kind": "resnet50", "name": "bundled"}})
    assert config.frame_encoder.preprocessing == "tensor"


@pytest.mark.parametrize("data, message", [
    ({"musicgn": "x"}, "unknown key 'musicgn'"),
    ({"temporal": {"num_layer": 2}}, "unknown key 'temporal.num_layer'"),
    ({"fps": "fast"}, "fps: expected float"),
    ({"temporal": {"num_layers": 2.5}}, "temporal.num_layers: expected int"),
    ({"temporal": {"output_space": "clip"}}, "temporal.output_space: 'clip' is not one of 't5', 'decoder'"),
    ({"frame_encoder": {"kind": "vit"}}, "frame_encoder.kind: 'vit' is not one of"),
    ({"frame_encoder": "clip"}, "frame_encoder: expected a mapping"),
    ({"frame_encoder": {"preprocessing": "opencv"}}, "frame_encoder.preprocessing: 'opencv' is not one of 'tensor', 'pil'"),
])
def test_bad_keys_and_types(data, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        from_dict(VideoModelConfig, data)


@pytest.mark.parametrize("change, message", [
    ({"fps": 0.0}, "fps: must be positive"),
    ({"format_version": 99}, "newer than this code"),
    ({"format": "other"}, "format: expected 'video-bgm'"),
    ({"frame_encoder": FrameEncoderConfig(kind="clip", preprocessing="pil")},
     "frame_encoder.preprocessing: 'pil' is the thesis's ResNet-50 recipe; kind 'clip' takes 'tensor'"),
])
def test_impossible_values(change, message):
    config = dataclasses.replace(VideoModelConfig(), **change)
    with pytest.raises(ValueError, match=message):
        config.validate()


def test_ints_are_accepted_for_floats():
    assert from_dict(VideoModelConfig, {"fps": 2}).fps == 2.0


@pytest.mark.parametrize("change, message", [
    ({"guidance_scale": -1.0}, "guidance_scale"),
    ({"temperature": 0.0}, "temperature"),
    ({"top_k": -5}, "top_k"),
    ({"top_p": 1.5}, "top_p"),
    ({"duration": 0.0}, "duration"),
    ({"seed": -1}, "seed"),
])
def test_generation_params_validation(change, message):
    with pytest.raises(ValueError, match=message):
        GenerationParams(**change).validate()
