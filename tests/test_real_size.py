"""Real-size architectures (musicgen-small and CLIP ViT-B/32 shapes, random weights): the code is
not only right for the tiny test models. No download: the shapes are built from configs."""

import pytest
import torch

from video_bgm.config import FrameEncoderConfig, GenerationParams, TemporalConfig, VideoModelConfig
from video_bgm.frames import CLIPFrameEncoder
from video_bgm.musicgen import MusicGen
from video_bgm.pipeline import VideoBGM
from video_bgm.random_models import musicgen_config, random_musicgen, save_clip
from video_bgm.temporal import TemporalTransformer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_size_model(tmp_path_factory):
    clip_dir = save_clip(tmp_path_factory.mktemp("clip-b32") / "clip", "base-patch32")
    config = VideoModelConfig(musicgen="facebook/musicgen-small", fps=1.0,
                              frame_encoder=FrameEncoderConfig(kind="clip", name=str(clip_dir)),
                              temporal=TemporalConfig())  # the defaults: 512-d CLIP in, 768-d T5 space out
    torch.manual_seed(0)
    musicgen = MusicGen(random_musicgen(musicgen_config("small")), name="musicgen-small (random)")
    return VideoBGM(config, CLIPFrameEncoder(str(clip_dir)), TemporalTransformer(config.temporal).eval(), musicgen)


def test_default_config_fits_real_clip_and_musicgen_small(real_size_model):
    mg = real_size_model.musicgen
    assert (mg.text_dim, mg.decoder_dim, mg.num_codebooks, mg.sample_rate, mg.frame_rate) == (768, 1024, 4, 32000, 50)
    assert real_size_model.frame_encoder.feature_dim == 512


def test_real_size_generation_with_guidance_and_prompt_free(real_size_model, clip_3s):
    result = real_size_model.generate(clip_3s, GenerationParams(seed=0, duration=0.2))
    assert result.audio.shape == (1, 6400) and result.sample_rate == 32000
    assert torch.isfinite(torch.from_numpy(result.audio)).all()


def test_real_size_loss_trains_only_the_temporal_transformer(real_size_model):
    model = real_size_model
    features = torch.randn(2, 4, 512)
    mask = torch.ones(2, 4, dtype=torch.bool)
    codes = torch.randint(0, 2048, (2, 4, 20))
    model.temporal.train()
    try:
        condition, cond_mask = model.condition(features, mask)
        loss = model.musicgen.loss(condition, cond_mask, codes)
        loss.backward()
        # random weights: the loss is near log(2048) = 7.6 per codebook
        assert 6.0 < loss.item() < 10.0
        assert all(p.grad is not None for p in model.temporal.parameters())
        assert all(p.grad is None for p in model.musicgen.model.parameters())
    finally:
        model.temporal.zero_grad(set_to_none=True)
        model.temporal.eval()
