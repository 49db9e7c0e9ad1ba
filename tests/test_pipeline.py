"""VideoBGM: model folders round-trip, both output spaces, prompts, and training touches only the encoder."""

import dataclasses
import json

import pytest
import torch

from video_bgm.config import GenerationParams
from video_bgm.errors import ModelError
from video_bgm.pipeline import VideoBGM
from video_bgm.random_models import tiny_temporal_config
from video_bgm.temporal import TemporalTransformer


def _features(model, frames=6, batch=2):
    torch.manual_seed(0)
    features = torch.randn(batch, frames, model.config.temporal.feature_dim)
    mask = torch.ones(batch, frames, dtype=torch.bool)
    mask[-1, frames // 2:] = False
    return features, mask


def test_save_and_load_round_trip(tmp_path, tiny_model, clip_3s):
    saved = tiny_model.save_pretrained(tmp_path / "copy")
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((saved / "config.json").read_text())
    assert config["format"] == "video-bgm" and config["temporal"]["output_space"] == "t5"

    # the copy holds absolute references to the same frozen models and the same weights
    reloaded = VideoBGM.from_pretrained(saved, device="cpu")
    features, mask = _features(tiny_model)
    torch.testing.assert_close(reloaded.condition(features, mask)[0], tiny_model.condition(features, mask)[0])
    params = GenerationParams(seed=4, duration=1.0)
    assert (reloaded.generate(clip_3s, params).audio == tiny_model.generate(clip_3s, params).audio).all()


def test_decoder_space_model_generates(tiny_model, clip_3s):
    """"decoder" space (the thesis's choice) bypasses MusicGen's text projection."""
    config = dataclasses.replace(tiny_model.config,
                                 temporal=tiny_temporal_config(output_space="decoder"))
    torch.manual_seed(0)
    model = VideoBGM(config, tiny_model.frame_encoder, TemporalTransformer(config.temporal).eval(),
                     tiny_model.musicgen)
    features, mask = _features(model)
    condition, cond_mask = model.condition(features, mask)
    tokens, _ = model.temporal(features, mask)
    torch.testing.assert_close(condition, tokens)  # no projection in between
    result = model.generate(clip_3s, GenerationParams(seed=0, duration=1.0))
    assert result.audio.shape == (1, 32000)


def test_t5_space_goes_through_musicgens_projection_and_prompt_follows(tiny_model):
    features, mask = _features(tiny_model)
    condition, cond_mask = tiny_model.condition(features, mask)
    tokens, token_mask = tiny_model.temporal(features, mask)
    torch.testing.assert_close(condition, tiny_model.musicgen.model.enc_to_dec_proj(tokens))
    with_prompt, prompt_mask = tiny_model.condition(features, mask, prompt="calm piano")
    text, text_mask = tiny_model.musicgen.encode_text(["calm piano"] * 2)
    assert with_prompt.shape[1] == condition.shape[1] + text.shape[1]
    torch.testing.assert_close(with_prompt[:, : condition.shape[1]], condition)
    torch.testing.assert_close(with_prompt[:, condition.shape[1]:], tiny_model.musicgen.project_text(text))
    assert prompt_mask.equal(torch.cat([token_mask, text_mask], dim=1))


def test_an_optimizer_step_changes_only_the_video_encoder(tiny_model):
    model = tiny_model
    features, mask = _features(model)
    frozen_before = {f"musicgen.{k}": v.clone() for k, v in model.musicgen.model.state_dict().items()}
    frozen_before.update({f"frames.{k}": v.clone() for k, v in model.frame_encoder.state_dict().items()})
    trainable_before = {k: v.clone() for k, v in model.temporal.state_dict().items()}

    model.temporal.train()
    optimizer = torch.optim.AdamW([p for p in model.temporal.parameters() if p.requires_grad], lr=1e-2)
    codes = torch.randint(0, 64, (2, model.musicgen.num_codebooks, 25))
    try:
        condition, cond_mask = model.condition(features, mask)
        loss = model.musicgen.loss(condition, cond_mask, codes)
        loss.backward()
        optimizer.step()
    finally:
        model.temporal.load_state_dict(trainable_before)
        model.temporal.eval()
        model.temporal.zero_grad(set_to_none=True)

    frozen_after = {f"musicgen.{k}": v for k, v in model.musicgen.model.state_dict().items()}
    frozen_after.update({f"frames.{k}": v for k, v in model.frame_encoder.state_dict().items()})
    assert all(torch.equal(frozen_before[k], frozen_after[k]) for k in frozen_before)
    assert all(p.grad is None for p in model.musicgen.model.parameters())
    assert all(p.grad is None for p in model.frame_encoder.parameters())


def test_train_and_eval_switch_only_the_video_encoder(tiny_model):
    try:
        assert tiny_model.train() is tiny_model and tiny_model.temporal.training
        assert not tiny_model.frame_encoder.training and not tiny_model.musicgen.model.training
        features, mask = _features(tiny_model)
        assert tiny_model.eval() is tiny_model and not tiny_model.temporal.training
        with torch.no_grad():  # no dropout: the same tokens twice
            assert torch.equal(tiny_model.condition(features, mask)[0], tiny_model.condition(features, mask)[0])
    finally:
        tiny_model.eval()


def test_generate_refuses_absurd_durations_and_windows(tiny_model, clip_3s):
    """Any length is made window by window (tests/test_windows.py), up to a sanity bound."""
    from video_bgm.errors import UserInputError
    from video_bgm.pipeline import MAX_SECONDS

    with pytest.raises(UserInputError, match="at most 3 h"):
        tiny_model.generate(clip_3s, GenerationParams(duration=MAX_SECONDS + 1))
    with pytest.raises(UserInputError, match="--window: 45 s is longer than this MusicGen can generate at once"):
        tiny_model.generate(clip_3s, GenerationParams(duration=1.0, window=45.0))
    with pytest.raises(ValueError, match="overlap"):
        tiny_model.generate(clip_3s, GenerationParams(duration=1.0, window=5.0, overlap=5.0))


def test_musicgen_override_with_other_dimensions_is_a_clear_error(tmp_path, tiny_bundle):
    from video_bgm.random_models import musicgen_config, random_musicgen

    config = musicgen_config("tiny")
    config.text_encoder.d_model = 48  # T5 space of another width
    random_musicgen(config).save_pretrained(tmp_path / "wide-musicgen")
    with pytest.raises(ModelError, match="temporal.output_dim is 32 in 't5' space but .*wide-musicgen's text encoder width is 48"):
        VideoBGM.from_pretrained(tiny_bundle["video-encoder"], device="cpu", musicgen=str(tmp_path / "wide-musicgen"))


def test_musicgen_whose_weights_do_not_fit_its_config_is_refused(tmp_path):
    """transformers would re-initialise mismatched layers at random; we refuse to load them."""
    from video_bgm.musicgen import MusicGen
    from video_bgm.random_models import save_musicgen

    folder = save_musicgen(tmp_path / "broken", "tiny")
    config = json.loads((folder / "config.json").read_text())
    config["text_encoder"]["d_model"] = 48
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="cannot load MusicGen: some weights have other shapes than its config says"):
        MusicGen.from_pretrained(str(folder))
