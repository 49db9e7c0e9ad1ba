"""Writing outputs safely (issue 20): the input is never replaced, every OS failure is one line,
nothing is left half-written, Ctrl-C and SIGTERM clean up, lying headers size nothing, and a sweep
of hostile inputs over the public entry points."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import PYTHON, REPO, call_main, load_script
from test_media import filling_disk, lie_about_duration
from video_bgm import media, outputs
from video_bgm.errors import OutputError
from video_bgm.pipeline import VideoBGM
from video_bgm.synthetic import write_test_audio, write_test_video

generate_cli = load_script("code/inference/generate.py")
convert_cli = load_script("code/tools/convert_thesis_checkpoint.py")


def generate(*argv) -> tuple[int, str, str]:
    return call_main(generate_cli, "generate.py", *argv, "--quiet")


def one_error_line(stderr: str, prog: str = "generate.py") -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def no_model_load(monkeypatch):
    """Makes loading a model fail loudly: an error seen instead was found before the model loads."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(VideoBGM, "from_pretrained", refuse)


# ---------------------------------------------------------------------------------------------
# 0. Outputs that would destroy something, refused before any work


def test_output_equal_to_the_input_is_refused(tmp_path, tiny_bundle, clip_3s, no_model_load):
    video = tmp_path / "clip.mp4"
    shutil.copy(clip_3s, video)
    before = digest(video)
    os.link(video, tmp_path / "hardlink.mp4")
    (tmp_path / "symlink.mp4").symlink_to(video)
    as_wav = tmp_path / "holiday.wav"  # a video named .wav: the WAV beside --out holiday.mp4 would be it
    shutil.copy(clip_3s, as_wav)
    cases = [(video, video, "clip.mp4: is the input itself"),
             (video, tmp_path / "hardlink.mp4", f"is the input {video} (the same file)"),
             (video, tmp_path / "symlink.mp4", f"is the input {video} (the same file)"),
             (as_wav, tmp_path / "holiday.mp4", "holiday.wav: is the input itself")]
    for source, out, message in cases:
        code, _, err = generate(source, "--model", tiny_bundle["video-encoder"], "--out", out, "--overwrite")
        assert code == 1 and message in one_error_line(err), (out, err)
    assert digest(video) == before and digest(as_wav) == digest(clip_3s)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "hardlink.mp4", "holiday.wav", "symlink.mp4"]


def test_folder_mode_refuses_the_input_folder_as_output(tmp_path, tiny_bundle, no_model_load):
    videos = tmp_path / "videos"
    videos.mkdir()
    clip = write_test_video(videos / "a.mp4", duration=1.0, fps=10, size=(64, 48))
    before = digest(clip)
    for out in (videos, tmp_path / "videos" / ".." / "videos"):
        code, _, err = generate(videos, "--model", tiny_bundle["video-encoder"], "--out", out)
        assert code == 1 and "is the input folder" in one_error_line(err)
    assert os.listdir(videos) == ["a.mp4"] and digest(clip) == before


def test_existing_wav_is_replaced_only_with_overwrite(tmp_path, tiny_bundle, clip_3s):
    out = tmp_path / "music.mp4"
    wav = tmp_path / "music.wav"
    wav.write_bytes(b"the user's own recording")
    code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", out)
    assert code == 1 and one_error_line(err).endswith(f"{wav}: already exists (it would be replaced); "
                                                      "--overwrite replaces it")
    assert wav.read_bytes() == b"the user's own recording" and not out.exists()
    code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", out, "--overwrite")
    assert code == 0, err
    assert sf.info(wav).frames == 3 * 32000 and out.is_file()
    code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", out)
    assert code == 1 and "--overwrite" in one_error_line(err), "our own earlier WAV is not named either"


def test_out_naming_a_folder_is_one_line_and_leaves_nothing(tmp_path, tiny_bundle, clip_3s, no_model_load):
    folder = tmp_path / "out.mp4"
    folder.mkdir()
    code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", folder)
    assert code == 1 and f"--out {folder}: is a folder" in one_error_line(err)
    assert os.listdir(tmp_path) == ["out.mp4"] and os.listdir(folder) == []


def test_webm_output_of_h264_fails_before_the_model_loads(tmp_path, tiny_bundle, clip_3s, no_model_load):
    """Issue 22: it used to fail after the whole generation."""
    code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", tmp_path / "x.webm")
    assert code == 1 and "its h264 video cannot be copied into a .webm file; use .mkv instead" in one_error_line(err)
    assert os.listdir(tmp_path) == []


def test_file_name_too_long_fails_before_the_model_loads(tmp_path, tiny_bundle, clip_3s, no_model_load):
    out = tmp_path / ("m" * 300 + ".mp4")
    code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", out)
    assert code == 1 and "file name too long (304 bytes; this file system allows 255)" in one_error_line(err)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# 1. OS failures while writing: a real read-only folder, a real full disk, a folder removed


@contextmanager
def mounted(target: Path, *options: str):
    """``mount`` at ``target`` for the block, or skip where this machine does not let the tests mount."""
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip()}); the fault-injecting tests cover this path")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@contextmanager
def read_only(folder: Path, how: str):
    """A folder nobody (root included) can write to: a read-only bind mount, or an immutable folder."""
    folder.mkdir()
    if how == "read-only mount":
        with mounted(folder, "--bind", "-o", "ro", str(folder)):
            yield folder
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=False)


@pytest.mark.parametrize("how, cause", [("read-only mount", "Read-only file system"),
                                        ("immutable folder", "Operation not permitted")])
def test_unwritable_folder_is_found_before_the_model_loads(tmp_path, tiny_bundle, clip_3s, no_model_load, how, cause):
    with read_only(tmp_path / "locked", how) as folder:
        code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", folder / "m.mp4")
        assert code == 1 and one_error_line(err) == f"generate.py: error: {folder}: cannot write here: {cause}"
        code, _, err = generate(clip_3s.parent, "--model", tiny_bundle["video-encoder"], "--out", folder / "sub")
        assert code == 1 and f"{folder}: cannot write here: {cause}" in one_error_line(err)
        assert os.listdir(folder) == []


@pytest.mark.parametrize("size, failing", [("64k", "music.wav"), ("200k", "music.mp4")])
def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, tiny_bundle, clip_3s, size, failing):
    """A real small tmpfs: 64 KB fills while the WAV is written (3 s mono: 192 KB), 200 KB while muxing."""
    with mounted(tmp_path / "small", "-t", "tmpfs", "-o", f"size={size}", "tmpfs") as disk:
        code, out, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", disk / "music.mp4")
        assert code == 1 and out == ""
        assert one_error_line(err) == f"generate.py: error: {disk / failing}: cannot write: No space left on device"
        assert os.listdir(disk) == [], "no temporary files, no half outputs"


def test_full_disk_through_a_fault_injecting_file(tmp_path, tiny_bundle, clip_3s, monkeypatch):
    """The same, where the tests cannot mount: the WAV's file object fails as a full disk does."""
    monkeypatch.setattr(media, "open", filling_disk(4096), raising=False)
    code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", tmp_path / "m.mp4")
    assert code == 1
    assert one_error_line(err) == f"generate.py: error: {tmp_path / 'm.wav'}: cannot write: No space left on device"
    assert os.listdir(tmp_path) == []


def test_output_folder_removed_mid_run(tmp_path, tiny_bundle, clip_3s, monkeypatch):
    folder = tmp_path / "out"
    folder.mkdir()
    write_pcm16 = media._write_pcm16

    def then_remove_the_folder(*args, **kwargs):
        write_pcm16(*args, **kwargs)
        shutil.rmtree(folder)

    monkeypatch.setattr(media, "_write_pcm16", then_remove_the_folder)
    code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", folder / "m.mp4")
    assert code == 1
    assert one_error_line(err) == f"generate.py: error: {folder / 'm.mp4'}: cannot write: its folder {folder} no longer exists"
    assert os.listdir(tmp_path) == []


def test_outputs_are_renamed_together_or_not_at_all(tmp_path):
    video, wav = tmp_path / "a.mp4", tmp_path / "a.wav"
    wav.write_bytes(b"old wav")
    real_replace = os.replace

    def video_rename_fails(src, dst):
        if Path(dst) == video:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))
        return real_replace(src, dst)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(outputs.os, "replace", video_rename_fails)
        with pytest.raises(OutputError, match=r"a\.mp4: cannot write: Input/output error"):
            with outputs.atomic_outputs(video, wav) as (tmp_video, tmp_wav):
                tmp_video.write_bytes(b"new video")
                tmp_wav.write_bytes(b"new wav")
    assert sorted(os.listdir(tmp_path)) == ["a.wav"] and wav.read_bytes() == b"old wav", "the old WAV is put back"


# ---------------------------------------------------------------------------------------------
# 2. Headers that lie


@pytest.fixture
def lying_videos(tmp_path) -> dict[str, Path]:
    src = Path(write_test_video(tmp_path / "honest.mkv", duration=3.0, fps=10, size=(64, 48)))
    long, short = tmp_path / "claims_99h.mkv", tmp_path / "claims_1s.mkv"
    long.write_bytes(lie_about_duration(src, b"99:00:03.0"))
    short.write_bytes(lie_about_duration(src, b"00:00:01.0"))
    return {"long": long, "short": short}


@pytest.mark.parametrize("kind, claim", [("long", "356403 s (99.0 h)"), ("short", "1.00 s")])
def test_lying_header_sizes_nothing_and_is_reported(tmp_path, tiny_bundle, lying_videos, kind, claim):
    """Was: --duration 2 on a 99 h header allocated 42.5 GiB to pad the music; without it, refused."""
    out = tmp_path / "out.mkv"
    argv = [lying_videos[kind], "--model", tiny_bundle["video-encoder"], "--out", out]
    code, stdout, err = generate(*argv, *(["--duration", "2"] if kind == "long" else []))
    assert code == 0, err
    assert (f"{lying_videos[kind].name}: its header says {claim} but its video data lasts 3.00 s; 3.00 s used"
            in stdout)
    music = media.decode_audio(out, 32000, 1).shape[1] / 32000
    assert abs(music - 3.0) < 0.05, "the muxed audio follows the frames, not the header"
    assert sf.info(out.with_suffix(".wav")).duration == pytest.approx(2.0 if kind == "long" else 3.0)


def test_music_longer_than_the_video_is_said(tmp_path, tiny_bundle, clip_3s):
    """Issue 22: --duration 5 on a 3 s clip says that 2 s of the music are only in the WAV."""
    code, stdout, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", tmp_path / "m.mp4",
                                 "--duration", "5")
    assert code == 0, err
    assert "2.0 s of the 5 s of music are not in the video (3.0 s long); the WAV has all of it" in stdout


# ---------------------------------------------------------------------------------------------
# 4. Ctrl-C and SIGTERM; what a SIGKILLed run left


def test_interrupt_while_writing_removes_the_temporary_files(tmp_path, tiny_bundle, clip_3s, monkeypatch):
    def interrupted(*args, **kwargs):
        assert any(tmp_path.glob(".m.mp4.partial-*/m.wav")), "the WAV was written to its temporary name"
        raise KeyboardInterrupt

    monkeypatch.setattr(media, "_mux_into", interrupted)
    code, _, err = call_main(generate_cli, "generate.py", clip_3s, "--model", tiny_bundle["video-encoder"],
                             "--out", tmp_path / "m.mp4", "--quiet")
    assert code == 130 and err.strip() == "generate.py: interrupted"
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("signum, code, line", [(signal.SIGINT, 130, "interrupted"),
                                                (signal.SIGTERM, 143, "terminated")])
def test_signals_give_one_line_and_their_exit_code(tmp_path, tiny_bundle, clip_3s, signum, code, line):
    """A real process, signalled while it generates 60 s of music (or, on a slow machine, still loading)."""
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([PYTHON, str(REPO / "code/inference/generate.py"), str(clip_3s), "--model",
                             str(tiny_bundle["video-encoder"]), "--out", str(out / "m.mp4"), "--duration", "60",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as from a terminal: a test run started in the background inherits SIGINT ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(8)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    assert stderr.strip() == f"generate.py: {line}" and stdout == ""
    assert os.listdir(out) == []


def test_stale_work_folders_of_killed_runs_are_removed(tmp_path, tiny_bundle, clip_3s):
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs
    stale = tmp_path / f".m.mp4.partial-{gone.pid}-abc123"
    legacy = tmp_path / ".m.k3j_9x2a"  # the form before this fix: .<stem>.<random>/music.*
    alive = tmp_path / f".other.mp4.partial-{os.getpid()}-def456"
    for folder in (stale, legacy, alive):
        folder.mkdir()
        (folder / "music.wav").write_bytes(b"a whole WAV")
    code, _, err = generate(clip_3s, "--model", tiny_bundle["video-encoder"], "--out", tmp_path / "m.mp4")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.mp4", "m.wav", alive.name])


# ---------------------------------------------------------------------------------------------
# 22 (c). The Python API writes the same way


def test_generation_save_and_mux(tmp_path, tiny_model, clip_3s):
    result = tiny_model.generate(clip_3s, duration_params(1.5))
    wav = result.save(tmp_path / "music.wav")
    audio, rate = sf.read(wav, always_2d=True, dtype="float32")
    assert rate == result.sample_rate and audio.shape == (round(1.5 * rate), 1)
    assert np.abs(audio.T - result.audio).max() <= 1.5 / 32767  # written x 32767 rounded, read back / 32768
    video = result.mux(clip_3s, tmp_path / "music.mkv")
    assert abs(media.decode_audio(video, 32000, 1).shape[1] / 32000 - 3.0) < 0.05, "padded to the video"
    with pytest.raises(OutputError, match="is the input itself"):
        result.mux(clip_3s, clip_3s)
    with pytest.raises(Exception, match=r"cannot be copied into a \.webm"):
        result.mux(clip_3s, tmp_path / "music.webm")
    assert sorted(os.listdir(tmp_path)) == ["music.mkv", "music.wav"]


def duration_params(seconds: float):
    from video_bgm.config import GenerationParams

    return GenerationParams(seed=1, duration=seconds)


# ---------------------------------------------------------------------------------------------
# 3. Hostile inputs over the entry points


def hostile_files(folder: Path, clip: Path) -> dict[str, Path]:
    folder.mkdir()
    files = {"empty": folder / "empty.mp4", "text": folder / "notes.mp4", "truncated": folder / "cut.mp4",
             "zeroed": folder / "zeroed.mp4", "image": folder / "photo.mp4", "audio only": folder / "tone.m4a",
             "folder named .mp4": folder / "dir.mp4", "missing": folder / "missing.mp4"}
    files["empty"].write_bytes(b"")
    files["text"].write_text("not a video\n")
    data = clip.read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["zeroed"].write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    files["image"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    write_test_audio(files["audio only"], duration=0.5)
    files["folder named .mp4"].mkdir()
    return files


HOSTILE = ["empty", "text", "truncated", "zeroed", "image", "audio only", "folder named .mp4", "missing"]


@pytest.mark.parametrize("kind", HOSTILE)
def test_generate_sweep(tmp_path, tiny_bundle, clip_3s, kind):
    path = hostile_files(tmp_path / "in", clip_3s)[kind]
    before = digest(path) if path.is_file() else None
    out = tmp_path / "out"
    out.mkdir()
    folder_mode = kind == "folder named .mp4"  # a folder is folder mode, with no videos in it
    code, _, err = generate(path, "--model", tiny_bundle["video-encoder"], "--out", out if folder_mode else out / "m.mp4")
    if folder_mode:
        assert code == 1 and "dir.mp4: no videos found" in one_error_line(err)
    else:
        assert code == 1 and path.name in one_error_line(err)
    assert os.listdir(out) == [] and (digest(path) if path.is_file() else None) == before


def test_generate_sweep_in_folder_mode(tmp_path, tiny_bundle, clip_3s):
    """A folder of hostile files and one good clip: each bad one is one line, the good one is written."""
    folder = tmp_path / "in"
    files = hostile_files(folder, clip_3s)
    shutil.copy(clip_3s, folder / "good.mp4")
    before = {p: digest(p) for p in folder.iterdir() if p.is_file()}
    out = tmp_path / "out"
    code, stdout, err = generate(folder, "--model", tiny_bundle["video-encoder"], "--out", out)
    assert code == 1 and "Traceback" not in err
    assert "1 written, 0 already done (skipped)" in stdout
    for kind in ("empty", "text", "truncated", "zeroed", "image"):
        assert f"failed: {files[kind]}" in stdout or any(f"{files[kind].name}: FAILED" in line
                                                        for line in err.splitlines()), kind
    assert sorted(p.name for p in out.iterdir()) == ["good.mp4", "good.wav"]
    assert {p: digest(p) for p in folder.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("kind", ["empty", "text", "truncated"])
def test_evaluate_sweep(tmp_path, tiny_bundle, clip_3s, kind):
    """A data folder holding only a hostile file: one line naming it (or the folder), nothing written."""
    evaluate_cli = load_script("code/evaluation/evaluate.py")
    files = hostile_files(tmp_path / "in", clip_3s)
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(files[kind], data / files[kind].name)
    out = tmp_path / "report"
    code, _, err = call_main(evaluate_cli, "evaluate.py", "--model", tiny_bundle["video-encoder"], "--data", data,
                             "--out", out, "--no-clap", "--quiet", "--seconds", "1", "--takes", "1")
    assert code == 1
    line = one_error_line(err, "evaluate.py")
    assert files[kind].name in line or str(data) in line
    assert not any(p.is_file() and p.suffix == ".wav" for p in out.rglob("*")) if out.exists() else True


@pytest.mark.parametrize("kind", ["empty config", "garbage weights", "text weights", "missing weights"])
def test_convert_sweep(tmp_path, kind):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "configuration.yml").write_text("" if kind == "empty config" else "fps: 1\n")
    if kind != "missing weights":
        (folder / "lm_final.pt").write_bytes(os.urandom(256) if kind != "text weights" else b"not a checkpoint\n")
    before = {p: digest(p) for p in folder.iterdir()}
    code, _, err = call_main(convert_cli, "convert_thesis_checkpoint.py", folder, tmp_path / "converted")
    assert code == 1
    line = one_error_line(err, "convert_thesis_checkpoint.py")
    assert str(folder) in line
    assert not (tmp_path / "converted").exists() or not any((tmp_path / "converted").iterdir())
    assert {p: digest(p) for p in folder.iterdir()} == before


def test_training_sweep(tmp_path, tiny_bundle, clip_3s):
    """Hostile files among good clips: each is reported once and skipped, the run trains on the rest and
    leaves every input as it was; with only hostile files, one line; a config that is not YAML, one line."""
    from training_helpers import paired_clips, tiny_config

    training_cli = load_script("code/training/training.py")
    videos = paired_clips(tmp_path / "videos", 4, duration=1.5)
    files = hostile_files(tmp_path / "hostile", clip_3s)
    for kind in ("empty", "text", "truncated", "zeroed", "image"):
        shutil.copy(files[kind], videos / files[kind].name)
    before = {p: digest(p) for p in videos.iterdir()}
    config = tiny_config(tmp_path, tiny_bundle, videos, max_steps=1, eval_every=1, save_every=1)
    code, _, err = call_main(training_cli, "training.py", "--config", config, "--quiet")
    assert code == 0 and "Traceback" not in err, err
    for kind in ("empty", "text", "truncated", "zeroed", "image"):
        assert err.count(f"skipping {Path(files[kind].name).stem}:") == 1, (kind, err)
    assert {p: digest(p) for p in videos.iterdir()} == before

    only_bad = tmp_path / "only-bad"
    only_bad.mkdir()
    for kind in ("empty", "text"):
        shutil.copy(files[kind], only_bad / files[kind].name)
    (tmp_path / "second").mkdir()
    config = tiny_config(tmp_path / "second", tiny_bundle, only_bad)
    code, _, err = call_main(training_cli, "training.py", "--config", config, "--quiet")
    lines = err.strip().splitlines()  # each skipped file as it is found, then the error
    assert code == 1 and "Traceback" not in err and len(lines) == 3, err
    assert lines[-1].startswith("training.py: error: no usable clips in the dataset (2 skipped")

    not_yaml = tmp_path / "conf.yml"
    not_yaml.write_text("train: [unclosed\n")
    code, _, err = call_main(training_cli, "training.py", "--config", not_yaml, "--quiet")
    assert code == 1 and str(not_yaml) in one_error_line(err, "training.py")
