"""The thesis's checkpoints: parity with an independent reference, PEFT adapters, the converter, bad files.

The reference (thesis_reference.py) is written from shared/thesis-checkpoints.md and the thesis's
frame path (PIL images through torchvision's preset); its random weights are saved in exactly the
thesis's key layout and loaded by our code. The tiny stereo
MusicGen stands in for facebook/musicgen-stereo-* (passed with --musicgen, as a user would).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from transformers import MusicgenForConditionalGeneration

from conftest import call_main, load_script, run_script
from thesis_reference import (
    merge_reference_lora,
    random_thesis_model,
    thesis_frames,
    thesis_pixels,
    training_config,
    write_audiocraft_adapter,
    write_thesis_folder,
)
from video_bgm import frame_window, media, windows
from video_bgm.config import VideoModelConfig
from video_bgm.errors import ModelError
from video_bgm.pipeline import VideoBGM

DECODER_WIDTH = 64  # the tiny MusicGen's
PUBLISHED_MUSICGEN = "facebook/musicgen-stereo-small"

generate_cli = load_script("code/inference/generate.py")


def generate(*argv) -> tuple[int, str, str]:
    return call_main(generate_cli, "generate.py", *argv)


@pytest.fixture(scope="module")
def stereo_musicgen(tiny_bundle) -> Path:
    return tiny_bundle["video-encoder-stereo"].parent / "musicgen-stereo"


@pytest.fixture(scope="module")
def reference():
    return random_thesis_model(out_dim=DECODER_WIDTH)


@pytest.fixture(scope="module")
def thesis_dir(tmp_path_factory, reference) -> Path:
    """A frozen-decoder checkpoint as published: its config names the real stereo MusicGen."""
    return write_thesis_folder(tmp_path_factory.mktemp("thesis") / "nature_small", reference,
                               training_config(PUBLISHED_MUSICGEN))


@pytest.fixture(scope="module")
def peft_dir(tmp_path_factory, thesis_dir, stereo_musicgen):
    """A PEFT checkpoint: the same video model plus a LoRA adapter in audiocraft's naming (r 4, alpha 8)."""
    folder = tmp_path_factory.mktemp("thesis-peft") / "nature_small"
    folder.mkdir()
    (folder / "lm_final.pt").symlink_to(thesis_dir / "lm_final.pt")
    (folder / "configuration.yml").write_text(yaml.safe_dump(training_config(PUBLISHED_MUSICGEN, use_peft=True)))
    decoder = MusicgenForConditionalGeneration.from_pretrained(stereo_musicgen).decoder
    lora = write_audiocraft_adapter(folder / "musicgen_peft_final", decoder, r=4, alpha=8.0)
    return folder, lora


@pytest.fixture(scope="module")
def peft_loaded(peft_dir, stereo_musicgen):
    return VideoBGM.from_pretrained(peft_dir[0], device="cpu", musicgen=str(stereo_musicgen))


@pytest.fixture(scope="module")
def loaded(thesis_dir, stereo_musicgen):
    return VideoBGM.from_pretrained(thesis_dir, device="cpu", musicgen=str(stereo_musicgen))


@pytest.fixture(scope="module")
def frames():
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (6, 48, 64, 3), dtype=torch.uint8, generator=generator)


def first_step_logits(decoder, tokens, mask):
    """The decoder's logits for the start token given conditioning tokens [1, N, D]: [K, V]."""
    K = decoder.config.num_codebooks
    start = torch.full((K, 1), decoder.config.pad_token_id, dtype=torch.long)
    with torch.no_grad():
        out = decoder(input_ids=start, encoder_hidden_states=tokens * mask[..., None], encoder_attention_mask=mask.long())
    return out.logits[:, -1]


def our_tokens(model, frames):
    features, mask = frame_window.fit(model.frame_encoder.encode(frames), model.config)
    with torch.no_grad():
        return model.condition(features[None], mask[None])


def test_thesis_folder_loads_as_the_thesis_model(loaded):
    c = loaded.config
    assert (c.fps, c.num_frames, c.short_clips) == (1.0, 30, "hold_last")
    t = c.temporal
    assert (t.feature_dim, t.d_model, t.num_layers, t.num_heads, t.ff_dim) == (2048, 2048, 1, 4, 64)
    assert (t.activation, t.norm_first, t.output_space, t.output_dim, t.max_positions) == ("relu", False, "decoder", 64, 30)
    assert (c.frame_encoder.kind, c.frame_encoder.name, c.frame_encoder.preprocessing) == ("resnet50", "bundled", "pil")
    assert loaded.info["training"]["wandb_project"] == "thesis"


def test_conditioning_tokens_and_first_step_logits_match_the_reference(loaded, reference, frames, stereo_musicgen):
    ours, ours_mask = our_tokens(loaded, frames)
    assert ours.shape == (1, 30, DECODER_WIDTH) and ours_mask.all()

    # The reference sees what the thesis saw: 30 frames; our policy for a 6 s clip holds its last frame.
    features = reference.frame_features(frames)
    expected = reference.tokens(torch.cat([features, features[-1:].expand(24, -1)]))
    assert (ours - expected).abs().max().item() <= 1e-5

    musicgen = MusicgenForConditionalGeneration.from_pretrained(stereo_musicgen).eval()
    expected_logits = first_step_logits(musicgen.decoder, expected, torch.ones(1, 30, dtype=torch.bool))
    ours_logits = first_step_logits(loaded.musicgen.model.decoder, ours, ours_mask)
    assert (ours_logits - expected_logits).abs().max().item() <= 1e-5


def test_short_clips_mask_policy_keeps_only_the_clips_frames(loaded, reference, frames):
    loaded.config.short_clips = "mask"
    try:
        ours, mask = our_tokens(loaded, frames)
    finally:
        loaded.config.short_clips = "hold_last"
    assert mask[0].tolist() == [True] * 6 + [False] * 24
    expected = reference.tokens(reference.frame_features(frames))  # the 6 frames alone, no padding
    assert (ours[:, :6] - expected).abs().max().item() <= 1e-5
    assert (ours[:, 6:] == 0).all()


# Real encoded clips: (codec, stored width x height, colour tags). Their frames are textured, since
# resizing filters differ most on detail, and sized so that the resize to 232 shrinks, enlarges, or
# works on a portrait frame.
REAL_CLIPS = {
    "h264-bt709.mp4": ("libx264", (640, 360), "bt709"),
    "h264-untagged.mp4": ("libx264", (400, 300), None),
    "vp9.webm": ("libvpx-vp9", (320, 180), None),
    "h264-full-range.mp4": ("libx264", (300, 400), "full range"),
}


def write_textured_clip(path: Path, codec: str, size: tuple[int, int], tags: str | None, seconds: int = 3) -> Path:
    """``seconds`` frames at 1 fps (so each second's frame is the one the thesis took) of gradients and
    noise, converted to YUV as the tags say (BT.709, or BT.601 in full range) and tagged so."""
    width, height = size
    rng = np.random.default_rng(len(path.name))
    with av.open(str(path), "w") as out:
        options = {"deadline": "realtime", "cpu-used": "8"} if codec == "libvpx-vp9" else {}
        stream = out.add_stream(codec, rate=Fraction(1), options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        context = stream.codec_context
        colourspace, colour_range = {"bt709": (1, 1), "full range": (None, 2), None: (None, None)}[tags]
        if colourspace:
            context.colorspace = context.color_primaries = context.color_trc = colourspace
        if colour_range:
            context.color_range = colour_range
        y, x = np.mgrid[0:height, 0:width]
        for k in range(seconds):
            base = np.stack([x * 255 / width, y * 255 / height, (x + y + 60 * k) % 256], axis=-1)
            rgb = np.clip(base + rng.normal(0, 30, base.shape), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace=colourspace, dst_color_range=colour_range)
            frame.pts = k
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def real_clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("real-clips")
    return {name: write_textured_clip(folder / name, *spec) for name, spec in REAL_CLIPS.items()}


def _levels(pixels: torch.Tensor) -> torch.Tensor:
    """Normalised pixels [T, 3, H, W] back to grey levels 0..255."""
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    return ((pixels * std[:, None, None] + mean[:, None, None]) * 255).round()


@pytest.mark.parametrize("name", REAL_CLIPS)
def test_thesis_frames_are_preprocessed_as_the_thesis_did_to_the_level(loaded, real_clips, name):
    frames, _ = media.sample_frames(real_clips[name], loaded.config.fps)
    decoded, shown = thesis_frames(real_clips[name])
    assert torch.equal(frames, decoded[shown[: len(frames)]]), "decoded frames differ from FFmpeg's rgb24"
    ours, theirs = loaded.frame_encoder.preprocess(frames), thesis_pixels(frames)
    apart = (_levels(ours) - _levels(theirs)).abs()
    assert apart.max() == 0, f"{(apart > 0).float().mean():.1%} of the values are up to {apart.max():.0f} levels apart"
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("name", REAL_CLIPS)
def test_thesis_tokens_on_real_clips_match_the_thesis_code(loaded, reference, real_clips, name):
    clip = real_clips[name]
    info = media.probe_video(clip)
    ours, mask, _ = windows.video_condition(loaded, clip, info)(0.0, info.duration)  # what generation is conditioned on
    expected = reference.video_tokens(clip)
    assert ours.shape == expected.shape == (1, 30, DECODER_WIDTH) and mask.all()
    assert (ours - expected).abs().max().item() <= 1e-5


def test_frame_window_spreads_long_clips_over_the_trained_positions():
    config = VideoModelConfig(fps=1.0, num_frames=30)
    assert frame_window.sampling_rate(config, 12.0) == 1.0
    assert frame_window.sampling_rate(config, 30.0) == 1.0
    assert frame_window.sampling_rate(config, 60.0) == 0.5  # 30 frames 2 s apart
    features = torch.arange(31.0)[:, None]
    fitted, mask = frame_window.fit(features, config)
    assert fitted.shape == (30, 1) and mask.all() and fitted[-1, 0] == 29
    free = VideoModelConfig(fps=2.0)  # our own models: every frame, no fixed count
    assert frame_window.sampling_rate(free, 60.0) == 2.0
    assert frame_window.fit(features, free)[0].shape == (31, 1)


def test_generate_cli_with_a_thesis_folder_and_musicgen_override(tmp_path, thesis_dir, stereo_musicgen, clip_3s):
    code, out, err = generate(clip_3s, "--model", thesis_dir, "--musicgen", stereo_musicgen, "--out",
                              tmp_path / "t.mp4", "--duration", "1", "--seed", "2", "--quiet")
    assert code == 0, err
    audio, rate = sf.read(tmp_path / "t.wav", always_2d=True)
    assert rate == 32000 and audio.shape == (32000, 2)  # the stereo MusicGen the override names
    assert np.abs(audio).max() > 0.01


def test_peft_adapter_in_audiocraft_naming_matches_the_reference(peft_dir, peft_loaded, loaded, reference, frames,
                                                                 stereo_musicgen):
    _, lora = peft_dir
    model = peft_loaded
    assert model.adapter is not None and len(model.adapter.weights) == 4 * 2  # 4 modules x 2 layers
    ours, mask = our_tokens(model, frames)

    musicgen = MusicgenForConditionalGeneration.from_pretrained(stereo_musicgen).eval()
    merge_reference_lora(musicgen.decoder, lora, scale=8.0 / 4)
    features = reference.frame_features(frames)
    expected = reference.tokens(torch.cat([features, features[-1:].expand(24, -1)]))
    expected_logits = first_step_logits(musicgen.decoder, expected, torch.ones(1, 30, dtype=torch.bool))
    ours_logits = first_step_logits(model.musicgen.model.decoder, ours, mask)
    assert (ours_logits - expected_logits).abs().max().item() <= 1e-5
    # the adapter matters: without it the logits are others
    plain_logits = first_step_logits(loaded.musicgen.model.decoder, ours, mask)
    assert (plain_logits - ours_logits).abs().max().item() > 1e-2


def test_an_adapter_that_changes_nothing_says_so_in_one_line_when_it_loads(tmp_path, thesis_dir, loaded, peft_dir,
                                                                           stereo_musicgen, caplog):
    """The thesis's _peft adapters as published: its optimizer never updated them, so B is still 0."""
    from video_bgm.lora import read_adapter

    folder = tmp_path / "nature_small_peft"
    folder.mkdir()
    (folder / "lm_final.pt").symlink_to(thesis_dir / "lm_final.pt")
    (folder / "configuration.yml").write_text(yaml.safe_dump(training_config(PUBLISHED_MUSICGEN, use_peft=True)))
    decoder = MusicgenForConditionalGeneration.from_pretrained(stereo_musicgen).decoder
    write_audiocraft_adapter(folder / "musicgen_peft_final", decoder, r=4, alpha=8.0, trained=False)
    with caplog.at_level("WARNING"):
        model = VideoBGM.from_pretrained(folder, device="cpu", musicgen=str(stereo_musicgen))
    notes = [r.getMessage() for r in caplog.records if "exactly zero" in r.getMessage()]
    assert len(notes) == 1 and "\n" not in notes[0], notes
    assert "musicgen_peft_final" in notes[0] and "MusicGen's decoder stays as published" in notes[0]
    published = loaded.musicgen.model.decoder.state_dict()
    assert all(torch.equal(w, published[name]) for name, w in model.musicgen.model.decoder.state_dict().items())

    caplog.clear()
    with caplog.at_level("WARNING"):
        read_adapter(peft_dir[0] / "musicgen_peft_final")  # a trained adapter: nothing to say
    assert not [r for r in caplog.records if "exactly zero" in r.getMessage()]


def test_converter_writes_our_format_that_needs_no_pickle(tmp_path, peft_dir, peft_loaded, frames, stereo_musicgen):
    folder, _ = peft_dir
    direct = peft_loaded
    result = run_script("code/tools/convert_thesis_checkpoint.py", folder, tmp_path / "converted",
                        "--musicgen", stereo_musicgen)
    assert result.returncode == 0, result.stderr
    out = Path(result.stdout.strip())
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["README.md", "config.json", "model.safetensors",
                     "musicgen_adapter/adapter_config.json", "musicgen_adapter/adapter_model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["num_frames"] == 30 and config["musicgen_adapter"] == "musicgen_adapter"
    assert config["frame_encoder"]["preprocessing"] == "pil"  # fed as the thesis fed it after conversion too
    card = (out / "README.md").read_text()
    assert str(stereo_musicgen) not in card.split("---")[1]  # a local path is no base model on the hub
    assert "## Training configuration" in card and "wandb_project: thesis" in card and "r=4, alpha=8" in card

    converted = VideoBGM.from_pretrained(out, device="cpu")
    for name, tensor in direct.temporal.state_dict().items():
        assert torch.equal(tensor, converted.temporal.state_dict()[name]), name
    ours, mask = our_tokens(converted, frames)
    expected, expected_mask = our_tokens(direct, frames)
    torch.testing.assert_close(ours, expected, rtol=0, atol=0)
    torch.testing.assert_close(first_step_logits(converted.musicgen.model.decoder, ours, mask),
                               first_step_logits(direct.musicgen.model.decoder, expected, expected_mask), rtol=0, atol=1e-6)

    # The adapter we write is a plain PEFT adapter for transformers' MusicGen decoder.
    from peft import PeftModel

    decoder = MusicgenForConditionalGeneration.from_pretrained(stereo_musicgen).decoder.eval()
    peft_decoder = PeftModel.from_pretrained(decoder, str(out / "musicgen_adapter")).eval()
    with torch.no_grad():
        peft_logits = peft_decoder(input_ids=torch.full((8, 1), 64), encoder_hidden_states=ours,
                                   encoder_attention_mask=mask.long()).logits[:, -1]
    torch.testing.assert_close(peft_logits, first_step_logits(converted.musicgen.model.decoder, ours, mask),
                               rtol=1e-5, atol=1e-5)


def test_saved_thesis_model_round_trips_with_its_adapter(tmp_path, peft_loaded, frames):
    model = peft_loaded
    saved = model.save_pretrained(tmp_path / "saved")
    again = VideoBGM.from_pretrained(saved, device="cpu")
    ours, mask = our_tokens(again, frames)
    torch.testing.assert_close(first_step_logits(again.musicgen.model.decoder, ours, mask),
                               first_step_logits(model.musicgen.model.decoder, *our_tokens(model, frames)),
                               rtol=0, atol=1e-6)


class _RunsCode:
    """Unpickling this would create a file: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _bad_folder(tmp_path: Path, thesis_dir: Path, case: str) -> tuple[Path, str]:
    folder = tmp_path / case.replace(" ", "_")
    folder.mkdir()
    config = training_config(PUBLISHED_MUSICGEN)
    weights = folder / "lm_final.pt"
    if case == "truncated weights":
        weights.write_bytes((thesis_dir / "lm_final.pt").read_bytes()[: 300_000])
        expect = "lm_final.pt cannot be read (truncated or not a torch checkpoint"
    elif case == "config layers do not match weights":
        config["encoder_layers"] = 6
        weights.symlink_to(thesis_dir / "lm_final.pt")
        expect = "configuration.yml says encoder_layers 6 but lm_final.pt has 1 layers"
    elif case == "config width does not match weights":
        config["encoder_dim_feedforward"] = 8192
        weights.symlink_to(thesis_dir / "lm_final.pt")
        expect = "configuration.yml says encoder_dim_feedforward 8192 but lm_final.pt has linear1 of shape (64, 2048)"
    elif case == "musicgen width does not match weights":
        weights.symlink_to(thesis_dir / "lm_final.pt")
        expect = f"lm_final.pt makes 64-d tokens but {PUBLISHED_MUSICGEN}'s decoder width is 1024"
    elif case == "pickle that runs code":
        torch.save({"weight": torch.zeros(2), "payload": _RunsCode(tmp_path / "pwned")}, weights)
        expect = "lm_final.pt holds more than tensors: unpickling it would run code, so it is refused"
    elif case == "missing configuration key":
        del config["encoder_heads"]
        weights.symlink_to(thesis_dir / "lm_final.pt")
        expect = "configuration.yml: missing key 'encoder_heads'"
    (folder / "configuration.yml").write_text(yaml.safe_dump(config))
    return folder, expect


BAD_CHECKPOINTS = ["truncated weights", "config layers do not match weights", "config width does not match weights",
                   "musicgen width does not match weights", "pickle that runs code", "missing configuration key"]


@pytest.mark.parametrize("case", BAD_CHECKPOINTS)
def test_bad_thesis_checkpoints_are_one_clear_line(tmp_path, thesis_dir, clip_3s, case):
    folder, expect = _bad_folder(tmp_path, thesis_dir, case)
    code, out, err = generate(clip_3s, "--model", folder, "--out", tmp_path / "o.mp4", "--quiet")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("generate.py: error: "), err
    assert expect in err, err
    assert "Traceback" not in err and not (tmp_path / "o.mp4").exists()
    assert not (tmp_path / "pwned").exists(), "the checkpoint's code ran"


def test_large_checkpoints_extra_tensors_are_reported_and_skipped(tmp_path, reference, thesis_dir, stereo_musicgen, caplog):
    from video_bgm import thesis

    folder = write_thesis_folder(tmp_path / "large", reference, training_config(PUBLISHED_MUSICGEN),
                                 extra={"musicgen.transformer.layers.0.linear1.weight": torch.zeros(4, 4),
                                        "musicgen.emb.0.weight": torch.zeros(4, 4)})
    with caplog.at_level("WARNING"):
        parts = thesis.read_checkpoint(folder, musicgen=str(stereo_musicgen))
    report = [r.getMessage() for r in caplog.records if "outside the video model" in r.getMessage()]
    assert len(report) == 1 and "2 tensors" in report[0] and "\n" not in report[0]
    assert not any(k.startswith("musicgen") for k in parts.temporal_state)


def test_unexpected_video_model_weight_is_refused(tmp_path, reference):
    from video_bgm import thesis

    folder = write_thesis_folder(tmp_path / "odd", reference, training_config(PUBLISHED_MUSICGEN),
                                 extra={"video_encoder.encoder.norm.weight": torch.ones(2048)})
    with pytest.raises(ModelError, match="unexpected video-model weight video_encoder.encoder.norm.weight"):
        thesis.read_checkpoint(folder)
