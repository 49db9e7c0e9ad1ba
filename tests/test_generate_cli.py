"""generate.py end to end with the tiny bundle: outputs, reproducibility, odd inputs, bad inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, call_main, load_script, run_script, streams, video_packets
from video_bgm import media
from video_bgm.synthetic import write_test_audio, write_test_video

generate_cli = load_script("code/inference/generate.py")


def generate(*argv) -> tuple[int, str, str]:
    return call_main(generate_cli, "generate.py", *argv)


def audio_seconds(path) -> float:
    return media.decode_audio(path, sample_rate=32000, channels=1).shape[-1] / 32000


def test_make_tiny_models_and_generate_from_another_directory(tmp_path, clip_3s):
    """The README's commands, as a user runs them: scripts work from any working directory."""
    made = run_script("code/tools/make_tiny_models.py", tmp_path / "bundle")
    assert made.returncode == 0, made.stderr
    model = Path(made.stdout.strip())
    assert (model / "config.json").is_file() and (model / "model.safetensors").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_script(str(REPO / "code/inference/generate.py"), clip_3s, "--model", model,
                        "--out", "music.mp4", "--seed", "1", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    out, wav = elsewhere / "music.mp4", elsewhere / "music.wav"
    assert "seed 1" in result.stdout and "generating" in result.stderr  # progress bar for the steps

    assert streams(out) == [("video", "h264"), ("audio", "aac")]
    assert video_packets(out) == video_packets(clip_3s), "the video stream is copied, not re-encoded"
    assert abs(audio_seconds(out) - media.probe_video(clip_3s).duration) < 0.05
    audio, rate = sf.read(wav, always_2d=True)
    assert rate == 32000 and audio.shape == (3 * 32000, 1)
    assert np.abs(audio).max() > 0.01, "the music is not silence"


def test_thesis_form_from_code_directory(tmp_path, tiny_bundle, clip_3s):
    result = run_script("inference/generate.py", clip_3s, "--model", tiny_bundle["video-encoder"],
                        "--out", tmp_path / "o.mp4", "--quiet", cwd=REPO / "code")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "o.wav").is_file()


def test_stereo_model_writes_stereo(tmp_path, tiny_bundle, clip_3s):
    code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder-stereo"], "--out", tmp_path / "s.mkv",
                            "--seed", "3", "--quiet")
    assert code == 0, err
    audio, rate = sf.read(tmp_path / "s.wav", always_2d=True)
    assert audio.shape == (3 * 32000, 2)
    assert not np.allclose(audio[:, 0], audio[:, 1])
    assert streams(tmp_path / "s.mkv") == [("video", "h264"), ("audio", "aac")]


def test_bf16_precision_option_writes_valid_music(tmp_path, tiny_bundle, clip_3s):
    """--precision bf16 runs the decoder in bfloat16 (its closeness to fp32: test_decoding.py)."""
    def run(precision):
        code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", tmp_path / f"{precision}.mp4",
                                "--seed", "2", "--quiet", "--precision", precision)
        assert code == 0, err
        return sf.read(tmp_path / f"{precision}.wav", always_2d=True)[0]

    bf16, fp32 = run("bf16"), run("fp32")
    assert bf16.shape == fp32.shape == (3 * 32000, 1)
    assert np.isfinite(bf16).all() and np.abs(bf16).max() > 0.01
    code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", tmp_path / "x.mp4",
                            "--precision", "fp8")
    assert code == 2 and "--precision" in err and len(err.strip().splitlines()) == 1


def test_seeded_runs_are_bit_identical_and_seeds_differ(tmp_path, tiny_bundle, clip_3s):
    def wav_bytes(name, seed, *extra):
        code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", tmp_path / f"{name}.mp4",
                                "--seed", seed, "--quiet", *extra)
        assert code == 0, err
        return (tmp_path / f"{name}.wav").read_bytes()

    first = wav_bytes("a", 5)
    assert wav_bytes("b", 5) == first
    assert wav_bytes("c", 6) != first
    assert wav_bytes("d", 5, "--prompt", "calm piano") != first, "a prompt changes the conditioning"
    assert wav_bytes("e", 5, "--guidance-scale", "1", "--top-k", "0", "--top-p", "0.9", "--temperature", "0.8") != first


def test_duration_option_shortens_music_but_not_the_video(tmp_path, tiny_bundle, clip_3s):
    code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", tmp_path / "d.mp4",
                            "--duration", "1.5", "--quiet")
    assert code == 0, err
    assert sf.info(tmp_path / "d.wav").frames == 48000
    assert abs(audio_seconds(tmp_path / "d.mp4") - 3.0) < 0.05, "padded to the video's length"


ODD_VIDEOS = {
    "no_audio": dict(audio=False),
    "portrait_rotated": dict(rotation=90, size=(64, 48)),
    "odd_size": dict(size=(63, 47)),
    "variable_frame_rate": dict(variable_frame_rate=True),
    "60fps": dict(fps=60),
    "very_short": dict(duration=0.4),
    "webm_vp9": dict(codec="libvpx-vp9", suffix=".webm"),
    "mpeg4_mov": dict(codec="mpeg4", suffix=".mov"),
}


@pytest.mark.parametrize("kind", ODD_VIDEOS)
def test_unusual_videos_work(tmp_path, tiny_bundle, kind):
    options = dict(duration=2.0, fps=10, size=(64, 48))
    options.update(ODD_VIDEOS[kind])
    suffix = options.pop("suffix", ".mp4")
    video = write_test_video(tmp_path / f"in{suffix}", **options)
    out = tmp_path / f"out{suffix if suffix != '.mov' else '.mp4'}"
    code, _, err = generate(video, "--model", tiny_bundle["video-encoder"], "--out", out, "--quiet")
    assert code == 0, err
    info_in, info_out = media.probe_video(video), media.probe_video(out)
    assert (info_out.width, info_out.height, info_out.rotation) == (info_in.width, info_in.height, info_in.rotation)
    assert abs(audio_seconds(out) - info_in.duration) < 0.05
    assert abs(sf.info(out.with_suffix(".wav")).duration - info_in.duration) < 0.01


def _edited_copy(model: Path, dst: Path, old: str, new: str) -> Path:
    """A copy of a model folder (relative references made absolute) with one edit to its config."""
    shutil.copytree(model, dst)
    text = (dst / "config.json").read_text()
    for name in ("musicgen-mono", "clip"):
        text = text.replace(f'"../{name}"', f'"{Path(model).parent / name}"')
    assert old in text, old
    (dst / "config.json").write_text(text.replace(old, new))
    return dst


def _bad_inputs(tmp: Path, clip: Path, bundle: dict) -> dict:
    """name -> (argv, text the error must contain). Built lazily: each case makes its own file."""
    text = tmp / "notes.mp4"
    text.write_text("this is not a video\n")
    truncated = tmp / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    audio_only = Path(write_test_audio(tmp / "tone.m4a", duration=1.0))
    no_config = tmp / "no-config-model"
    no_config.mkdir()
    model = bundle["video-encoder"]
    mismatched = _edited_copy(model, tmp / "mismatched-model", '"output_dim": 32', '"output_dim": 48')
    wrong_weights = _edited_copy(model, tmp / "wrong-weights-model", '"num_layers": 2', '"num_layers": 3')
    unknown_key = _edited_copy(model, tmp / "unknown-key-model", '"fps"', '"fsp"')
    dangling = _edited_copy(model, tmp / "dangling-model", str(Path(model).parent / "clip"), "../gone")
    return {
        "missing file": ([tmp / "nope.mp4", "--model", model], "nope.mp4: file not found"),
        "text file named .mp4": ([text, "--model", model], "notes.mp4"),
        "truncated video": ([truncated, "--model", model], "truncated.mp4"),
        "zero-length file": ([empty, "--model", model], "empty.mp4"),
        "audio-only file": ([audio_only, "--model", model], "tone.m4a: not a video file (no video stream)"),
        "model without config": ([clip, "--model", no_config], "not a model folder (no config.json)"),
        "missing model folder": ([clip, "--model", tmp / "nowhere"], "no such model folder"),
        "dimensions do not fit MusicGen": ([clip, "--model", mismatched], "temporal.output_dim is 48"),
        "weights do not fit config": ([clip, "--model", wrong_weights], "model.safetensors does not match config.json"),
        "unknown config key": ([clip, "--model", unknown_key], "unknown key 'fsp'"),
        "config names a missing folder": ([clip, "--model", dangling], "gone: no such folder (frame_encoder.name in"),
        "negative guidance": ([clip, "--model", model, "--guidance-scale", "-1"], "--guidance-scale: must be >= 0"),
        "zero temperature": ([clip, "--model", model, "--temperature", "0"], "--temperature: must be > 0"),
        "bad output suffix": ([clip, "--model", model, "--out-suffix", ".txt"], "--out"),
        "too long": ([clip, "--model", model, "--duration", "20000"], "at most 3 h"),
        "window too long": ([clip, "--model", model, "--window", "45"], "--window: 45 s is longer than this MusicGen"),
        "overlap not under the window": ([clip, "--model", model, "--overlap", "30"], "--overlap: must be > 0 and less"),
    }


BAD_INPUTS = ["missing file", "text file named .mp4", "truncated video", "zero-length file", "audio-only file",
              "model without config", "missing model folder", "dimensions do not fit MusicGen",
              "weights do not fit config", "unknown config key", "config names a missing folder", "negative guidance", "zero temperature",
              "bad output suffix", "too long", "window too long", "overlap not under the window"]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_clear_line_and_no_output(tmp_path, tiny_bundle, clip_3s, case):
    argv, expected = _bad_inputs(tmp_path, clip_3s, tiny_bundle)[case]
    outdir = tmp_path / "out"
    outdir.mkdir()
    if "--out-suffix" in argv:
        argv = argv[: argv.index("--out-suffix")] + ["--out", outdir / "music.txt"]
    else:
        argv = argv + ["--out", outdir / "music.mp4"]
    code, stdout, stderr = generate(*argv, "--quiet")
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("generate.py: error: "), stderr
    assert expected in lines[0]
    assert list(outdir.iterdir()) == [], "nothing written, not even temporary files"


def test_unknown_option_value_exits_2_with_one_line(tiny_bundle, clip_3s, tmp_path):
    result = run_script("code/inference/generate.py", clip_3s, "--model", tiny_bundle["video-encoder"],
                        "--out", tmp_path / "x.mp4", "--device", "gpu")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("generate.py: error: argument --device: invalid choice: 'gpu'")
    assert "Traceback" not in result.stderr and not (tmp_path / "x.mp4").exists()


def test_real_process_prints_no_traceback_for_a_corrupt_video(tmp_path, tiny_bundle, clip_3s):
    bad = tmp_path / "corrupt.mp4"
    data = bytearray(clip_3s.read_bytes())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)  # second half zeroed
    bad.write_bytes(bytes(data))
    result = run_script("code/inference/generate.py", bad, "--model", tiny_bundle["video-encoder"],
                        "--out", tmp_path / "x.mp4", "--quiet")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "corrupt.mp4" in result.stderr
    assert not list(tmp_path.glob("x.*"))


def test_failure_while_writing_leaves_nothing(tmp_path, tiny_bundle, clip_3s, monkeypatch):
    """The disk fills while muxing (after the WAV was written): one line naming the output, nothing left."""
    import errno
    import os

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(media, "_remux_with_audio", full_disk)
    code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", tmp_path / "m.mp4", "--quiet")
    assert code == 1
    assert err.strip() == f"generate.py: error: {tmp_path / 'm.mp4'}: cannot write: No space left on device"
    assert list(tmp_path.iterdir()) == []
