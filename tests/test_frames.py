"""Frozen frame encoders: preprocessing parity with each model's own recipe, batching, freezing."""

import numpy as np
import pytest
import torch

from video_bgm.config import FrameEncoderConfig
from video_bgm.errors import ModelError
from video_bgm.frames import CLIPFrameEncoder, ResNet50FrameEncoder, build_frame_encoder
from video_bgm.random_models import save_clip


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_clip(tmp_path_factory.mktemp("clip") / "clip", "tiny")


def _frames(t=5, h=48, w=64, seed=0):
    rng = np.random.default_rng(seed)
    # smooth images: resampling filters differ most on noise, least on natural-looking content
    base = rng.integers(0, 256, (t, h // 8, w // 8, 3)).astype(np.uint8)
    return torch.from_numpy(base.repeat(8, axis=1).repeat(8, axis=2))


def test_clip_preprocessing_matches_clip_image_processor(clip_dir):
    from transformers import CLIPImageProcessor

    encoder = CLIPFrameEncoder(str(clip_dir))
    frames = _frames()
    ours = encoder.preprocess(frames)
    theirs = CLIPImageProcessor.from_pretrained(clip_dir)(list(frames.numpy()), return_tensors="pt").pixel_values
    assert ours.shape == theirs.shape == (5, 3, 32, 32)
    assert (ours - theirs).abs().mean() < 0.02  # same recipe; resize kernels differ in the last bits


def test_clip_features_are_batched_frozen_and_deterministic(clip_dir):
    encoder = CLIPFrameEncoder(str(clip_dir))
    frames = _frames(t=7)
    all_at_once = encoder.encode(frames)
    in_twos = encoder.encode(frames, batch_size=2)
    assert all_at_once.shape == (7, encoder.feature_dim) == (7, 24)
    torch.testing.assert_close(all_at_once, in_twos, atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training, "a frozen encoder stays in eval mode"
    assert encoder.encode(frames[:0]).shape == (0, 24)


def test_resnet50_bundled_weights_and_its_recipe():
    torch.manual_seed(0)
    state = ResNet50FrameEncoder(weights=None).model.state_dict()
    encoder = build_frame_encoder(FrameEncoderConfig(kind="resnet50", name="bundled"), bundled_state=state)
    frames = _frames(t=3, h=360, w=480)
    pixels = encoder.preprocess(frames)
    assert pixels.shape == (3, 3, 224, 224)
    # ImageNet normalisation of a mid-grey frame
    grey = encoder.preprocess(torch.full((1, 240, 320, 3), 128, dtype=torch.uint8))
    expected = (128 / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(grey[0, :, 100, 100], expected)
    features = encoder.encode(frames)
    assert features.shape == (3, 2048)
    torch.testing.assert_close(encoder.encode(frames[:1]), features[:1], atol=1e-4, rtol=1e-4)


def test_resnet50_preprocessing_follows_the_config():
    """Our ResNet models keep the tensor resize; "pil" (the thesis's) feeds PIL images to the same preset."""
    from PIL import Image
    from torchvision.models import ResNet50_Weights

    preset = ResNet50_Weights.IMAGENET1K_V2.transforms()
    state = ResNet50FrameEncoder(weights=None).model.state_dict()
    rng = np.random.default_rng(3)
    frames = torch.from_numpy(rng.integers(0, 256, (2, 90, 120, 3), dtype=np.uint8))
    tensor = build_frame_encoder(FrameEncoderConfig(kind="resnet50", name="bundled"), bundled_state=state)
    pil = build_frame_encoder(FrameEncoderConfig(kind="resnet50", name="bundled", preprocessing="pil"),
                              bundled_state=state)
    assert torch.equal(tensor.preprocess(frames), preset(frames.permute(0, 3, 1, 2)))
    assert torch.equal(pil.preprocess(frames), torch.stack([preset(Image.fromarray(f)) for f in frames.numpy()]))
    assert not torch.equal(tensor.preprocess(frames), pil.preprocess(frames))


def test_resnet50_imagenet_weights_load_through_torch_hub_cache(tmp_path, monkeypatch):
    """IMAGENET1K_V2 goes through torchvision's own download cache; here a local one is planted."""
    torch.manual_seed(1)
    state = ResNet50FrameEncoder(weights=None).model.state_dict()
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, tmp_path / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    encoder = build_frame_encoder(FrameEncoderConfig(kind="resnet50", name="IMAGENET1K_V2"))
    torch.testing.assert_close(encoder.model.conv1.weight, state["conv1.weight"])


def test_bad_frame_encoder_configs_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="unknown ResNet-50 weights 'IMAGENET9'"):
        build_frame_encoder(FrameEncoderConfig(kind="resnet50", name="IMAGENET9"), tmp_path)
    with pytest.raises(ModelError, match="holds no frame_encoder"):
        build_frame_encoder(FrameEncoderConfig(kind="resnet50", name="bundled"), tmp_path, {})
    with pytest.raises(ModelError, match="no-such-clip: no such folder"):
        build_frame_encoder(FrameEncoderConfig(kind="clip", name="./no-such-clip"), tmp_path)
    (tmp_path / "empty-clip").mkdir()
    with pytest.raises(ModelError, match="cannot load the CLIP frame encoder"):
        build_frame_encoder(FrameEncoderConfig(kind="clip", name="empty-clip"), tmp_path)
