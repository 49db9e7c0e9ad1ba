"""Training: config, data layouts, feature cache, the loop, resume, bad input, and proof that it learns."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import REPO, load_script, run_script
from video_bgm import media
from video_bgm.errors import UserInputError
from video_bgm.random_models import tiny_temporal_config
from video_bgm.synthetic import write_paired_clips, write_test_audio, write_test_video, write_text_file
from video_bgm.train.config import DataConfig, load_train_config
from video_bgm.train.data import find_clips, split_clips

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


@pytest.fixture(scope="module")
def clips12(tmp_path_factory) -> Path:
    return paired_clips(tmp_path_factory.mktemp("paired") / "videos", 12)


# --- config ---------------------------------------------------------------------------------
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


# --- data layouts ---------------------------------------------------------------------------
def test_training_finds_every_video_that_generation_does(tmp_path):
    """One list of video extensions: .3gp and .mts clips get music in folder mode and train too."""
    from video_bgm.batch import videos_in

    videos = tmp_path / "videos"
    (videos / ".hidden").mkdir(parents=True)
    for name in ("a.mp4", "b.3gp", "c.MTS", "d.m4v", ".e.mp4", ".hidden/f.mp4", "notes.txt"):
        (videos / name).write_bytes(b"")
    clips, _ = find_clips(DataConfig(layout="videos_with_audio", videos=str(videos)))
    assert [c.video for c in clips] == videos_in(videos, recursive=True)
    assert [c.video.name for c in clips] == ["a.mp4", "b.3gp", "c.MTS", "d.m4v"]


def test_layouts_pair_videos_with_their_music(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b", "c"):
        write_test_video(videos / f"{name}.mp4", duration=1.0, audio=False)
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    write_test_audio(wavs / "a.wav", 1.0)
    write_test_audio(wavs / "b.wav", 1.0)
    clips, skipped = find_clips(DataConfig(layout="videos_and_wavs", videos=str(videos), audio=str(wavs)))
    assert [c.id for c in clips] == ["a", "b"] and clips[0].audio == wavs / "a.wav"
    assert len(skipped) == 1 and "c.mp4" in skipped[0].what and "no music file" in skipped[0].why

    demucs = tmp_path / "sep" / "htdemucs"
    for name in ("a", "c"):
        (demucs / name).mkdir(parents=True)
        write_test_audio(demucs / name / "no_vocals.wav", 1.0)
    clips, skipped = find_clips(DataConfig(layout="demucs", videos=str(videos), audio=str(tmp_path / "sep")))
    assert [c.id for c in clips] == ["a", "c"] and clips[1].audio == demucs / "c" / "no_vocals.wav"

    clips, _ = find_clips(DataConfig(layout="videos_with_audio", videos=str(videos)))
    assert [c.audio for c in clips] == [c.video for c in clips]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_manifest_layout_with_captions(tmp_path, suffix):
    write_test_video(tmp_path / "v1.mp4", duration=1.0)
    write_test_audio(tmp_path / "m1.wav", 1.0)
    rows = [{"video": "v1.mp4", "audio": "m1.wav", "caption": "calm piano"}, {"video": "missing.mp4"}]
    manifest = tmp_path / f"pairs{suffix}"
    if suffix == ".csv":
        manifest.write_text("video,audio,caption\nv1.mp4,m1.wav,calm piano\nmissing.mp4,,\n")
    else:
        manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    clips, skipped = find_clips(DataConfig(layout="manifest", manifest=str(manifest)))
    assert [(c.id, c.audio.name, c.caption) for c in clips] == [("v1", "m1.wav", "calm piano")]
    assert len(skipped) == 1 and "missing.mp4" in skipped[0].why


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="empty: no videos found"):
        find_clips(DataConfig(videos=str(tmp_path / "empty")))


def test_processes_share_an_epoch_without_overlap_and_resume_skips_what_was_seen():
    from video_bgm.train.segments import SegmentDataset

    dataset = SegmentDataset([], 2.0, 2.0, 50.0, seed=1, random_crops=True)
    dataset.items = [None] * 10  # only the ordering is exercised here

    def places(skip=0, rank=0, world=1):
        dataset.set_epoch(3, skip=skip, rank=rank, world=world)
        return [dataset.order[p] for p in dataset.positions]

    everything = places()
    assert sorted(everything) == list(range(10))
    shares = [places(rank=r, world=3) for r in range(3)]
    assert len({len(s) for s in shares}) == 1, "every process gets as many clips"
    assert set(sum(shares, [])) == set(range(10))
    # after one batch of 2 clips on each of 2 processes, the first 4 places are done
    assert sorted(places(skip=4, rank=0, world=2) + places(skip=4, rank=1, world=2)) == sorted(everything[4:])


def test_split_is_seeded_and_disjoint():
    from video_bgm.train.data import Clip

    clips = [Clip(f"c{i}", Path(f"c{i}"), Path(f"c{i}")) for i in range(20)]
    split = split_clips(clips, 0.1, 0.2, seed=3)
    assert split == split_clips(clips, 0.1, 0.2, seed=3) != split_clips(clips, 0.1, 0.2, seed=4)
    assert (len(split["validation"]), len(split["test"]), len(split["training"])) == (2, 4, 14)
    assert not set(split["validation"]) & set(split["test"]) & set(split["training"])


# --- the loop, end to end -------------------------------------------------------------------
def test_training_run_writes_a_model_generate_loads_and_resumes_when_rerun(tmp_path, tiny_bundle, clips12, clip_3s):
    config = tiny_config(tmp_path, tiny_bundle, clips12)
    assert training_main("--config", config) == 0
    run = tmp_path / "run"
    model = run / "model"
    assert {"config.json", "model.safetensors", "training_config.yaml", "metrics.json"} <= {p.name for p in model.iterdir()}
    assert json.loads((run / "split.json").read_text()).keys() == {"training", "validation", "test"}
    rows = metrics(run)
    assert {r["split"] for r in rows} == {"train", "validation", "test"}
    assert rows[0]["split"] == "validation" and rows[0]["step"] == 0, "an untrained baseline comes first"
    assert "conditioning_gain" in [r for r in rows if r["split"] == "validation"][-1]
    assert list(run.rglob("events.out.tfevents.*")), "TensorBoard logs"
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == ["best", "step-000010", "step-000015", "step-000020"]  # keep_last 3 + best

    out = tmp_path / "music.mp4"
    result = run_script("code/inference/generate.py", clip_3s, "--model", model, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert out.is_file() and out.with_suffix(".wav").is_file()

    # run again: nothing to do, the same model comes out; a longer max_steps continues the run
    before = load_file(model / "model.safetensors")
    assert training_main("--config", config) == 0
    assert all(torch.equal(before[k], v) for k, v in load_file(model / "model.safetensors").items())
    assert _without_time(metrics(run)) == _without_time(rows), "a rerun logs nothing twice"
    assert training_main("--config", config, "--set", "train.max_steps=25") == 0
    assert max(r["step"] for r in metrics(run)) == 25
    assert [r["split"] for r in metrics(run)].count("test") == 1


def test_a_half_written_metrics_line_is_dropped_on_resume(tmp_path):
    from video_bgm.train.loop import trim_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 5, "split": "train"}\n{"step": 9, "split": "train"}\n{"step": 10, "spl')
    trim_metrics(path, 5)
    assert path.read_text() == '{"step": 5, "split": "train"}\n'


def _without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


def test_thesis_form_from_the_code_folder(tmp_path, tiny_bundle, clips12):
    config = tiny_config(tmp_path, tiny_bundle, clips12, max_steps=2, eval_every=2)
    result = run_script("training/training.py", "--config", config, "--quiet", cwd=REPO / "code")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_other_settings_in_the_same_output_dir_are_refused(tmp_path, tiny_bundle, clips12):
    config = tiny_config(tmp_path, tiny_bundle, clips12, max_steps=2)
    assert training_main("--config", config) == 0
    assert training_main("--config", config, "--set", "model.fps=1.0") == 1


def test_a_run_saved_before_a_setting_existed_resumes(tmp_path, tiny_bundle, clips12):
    """A run's saved config lacking frame_encoder.preprocessing (older code) has its default: the same settings."""
    config = tiny_config(tmp_path, tiny_bundle, clips12, max_steps=2)
    assert training_main("--config", config) == 0
    saved_path = tmp_path / "run" / "training_config.yaml"
    saved = yaml.safe_load(saved_path.read_text())
    del saved["model"]["frame_encoder"]["preprocessing"]
    saved_path.write_text(yaml.safe_dump(saved))
    assert training_main("--config", config) == 0


def test_early_stopping(tmp_path, tiny_bundle, clips12, monkeypatch):
    from video_bgm.train.loop import Trainer

    losses = iter([5.0, 4.0, 4.5, 4.6, 4.7, 4.8])
    monkeypatch.setattr(Trainer, "evaluate", lambda self, model, data: {"loss": next(losses), "clips": len(data)})
    config = tiny_config(tmp_path, tiny_bundle, clips12, max_steps=100, eval_every=1, early_stopping_patience=2,
                         save_every=50)
    assert training_main("--config", config) == 0
    validation = [r for r in metrics(tmp_path / "run") if r["split"] == "validation"]
    assert [r["step"] for r in validation] == [0, 1, 2, 3]  # 4.0 at step 1, then two worse: stop
    state = json.loads((tmp_path / "run" / "checkpoints" / "best" / "state.json").read_text())
    assert state["step"] == 1 and state["best_validation_loss"] == 4.0


# --- feature cache --------------------------------------------------------------------------
def test_cache_is_computed_once_and_only_what_changed_is_recomputed(tmp_path, tiny_bundle, clips12, monkeypatch):
    config = tiny_config(tmp_path, tiny_bundle, clips12, max_steps=1, eval_every=1)
    assert training_main("--config", config) == 0
    cache = tmp_path / "cache"
    frames = list((cache / "frames").rglob("*.safetensors"))
    codes = list((cache / "codes").rglob("*.safetensors"))
    assert len(frames) == len(codes) == 12

    calls = {"frames": 0, "audio": 0}
    original_frames, original_audio = media.sample_frames, media.decode_audio

    def count_frames(*a, **k):
        calls["frames"] += 1
        return original_frames(*a, **k)

    def count_audio(*a, **k):
        calls["audio"] += 1
        return original_audio(*a, **k)

    monkeypatch.setattr(media, "sample_frames", count_frames)
    monkeypatch.setattr(media, "decode_audio", count_audio)
    assert training_main("--config", config, "--set", f"output_dir={tmp_path / 'again'}") == 0
    assert calls == {"frames": 0, "audio": 0}, "a second run reads everything from the cache"
    # another frame rate: frames are recomputed, EnCodec codes are reused
    assert training_main("--config", config, "--set", f"output_dir={tmp_path / 'fps'}", "--set", "model.fps=1.0") == 0
    assert calls == {"frames": 12, "audio": 0}
    assert len(list((cache / "frames").rglob("*.safetensors"))) == 24


def test_frames_preprocessed_another_way_are_cached_apart(tmp_path):
    """Features of PIL-resized frames (the thesis's way) are never reused for tensor-resized ones."""
    from types import SimpleNamespace

    from video_bgm.config import FrameEncoderConfig, VideoModelConfig
    from video_bgm.train.cache import FeatureCache

    musicgen = SimpleNamespace(audio_channels=1, num_codebooks=4)

    def cache(preprocessing: str) -> FeatureCache:
        encoder = FrameEncoderConfig(kind="resnet50", name="IMAGENET1K_V2", preprocessing=preprocessing)
        return FeatureCache(tmp_path, VideoModelConfig(frame_encoder=encoder), musicgen)

    tensor, pil = cache("tensor"), cache("pil")
    assert tensor.frames_dir != pil.frames_dir and tensor.codes_dir == pil.codes_dir
    assert json.loads((pil.frames_dir / "settings.json").read_text())["preprocessing"] == "pil"


def test_unreadable_clips_are_reported_once_and_skipped(tmp_path, tiny_bundle, capsys):
    videos = paired_clips(tmp_path / "videos", 8)
    write_text_file(videos / "broken.mp4")
    write_test_video(videos / "silent.mp4", duration=2.0, audio=False)
    config = tiny_config(tmp_path, tiny_bundle, videos, max_steps=2, eval_every=2)
    assert training_main("--config", config) == 0
    err = capsys.readouterr().err
    assert err.count("skipping broken") == 1 and err.count("skipping silent") == 1
    assert "2 clips skipped:" in err and "has no audio stream" in err
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert "broken" not in sum(split.values(), [])


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux's /proc")
def test_a_file_that_cannot_be_read_is_skipped_not_fatal(tmp_path, tiny_bundle, capsys):
    videos = paired_clips(tmp_path / "videos", 8)
    # reading /proc/self/mem from offset 0 fails with EIO, for root too (chmod 000 does not stop root)
    (videos / "unreadable.mp4").symlink_to("/proc/self/mem")
    config = tiny_config(tmp_path, tiny_bundle, videos, max_steps=2, eval_every=2)
    assert training_main("--config", config) == 0
    err = capsys.readouterr().err
    assert err.count("skipping unreadable") == 1 and "cannot read (Input/output error)" in err
    assert "1 clips skipped:" in err


def test_no_usable_clips_is_an_error(tmp_path, tiny_bundle, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_test_video(videos / "silent.mp4", duration=2.0, audio=False)
    assert training_main("--config", tiny_config(tmp_path, tiny_bundle, videos)) == 1
    assert "no usable clips in the dataset (1 skipped" in capsys.readouterr().err


def test_a_full_disk_while_checkpointing_loses_nothing(tmp_path, tiny_bundle, clips12, monkeypatch, capsys):
    import errno

    from video_bgm.train import checkpoints

    written = []
    real_save = checkpoints.save

    def fill_up(tensors):
        if len(written) >= 2:  # "best" at step 0 and step-000005 fit; then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(tensors)
        return real_save(tensors)

    monkeypatch.setattr(checkpoints, "save", fill_up)
    config = tiny_config(tmp_path, tiny_bundle, clips12, eval_every=100)
    assert training_main("--config", config) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert "cannot write checkpoint: the disk is full; earlier checkpoints are intact" in lines[-1]
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["best", "step-000005"], "no half-written folder"
    assert (folder / "step-000005" / "temporal.safetensors").is_file()
    # with space again, the run resumes from step 5
    monkeypatch.setattr(checkpoints, "save", real_save)
    assert training_main("--config", config) == 0
    assert "resuming from" in capsys.readouterr().err


def test_a_full_disk_in_torch_save_is_one_line_and_leaves_nothing(full_filesystem):
    """torch.save's own writer raises a RuntimeError naming neither file nor cause; ours says both."""
    from video_bgm.train import checkpoints

    for size in (64 * 1024, 16 * 1024):  # the weights (40 kB) fit but not the optimizer's state; nothing fits
        folder = full_filesystem(size)
        temporal = torch.nn.Linear(100, 100, bias=False)
        optimizer = torch.optim.AdamW(temporal.parameters())
        temporal(torch.ones(1, 100)).sum().backward()
        optimizer.step()
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
        with pytest.raises(checkpoints.CheckpointError, match="cannot write checkpoint: the disk is full"):
            checkpoints.save_checkpoint(folder / "ckpt", "step-000001", temporal, optimizer, scheduler, {"step": 1})
        assert list((folder / "ckpt").iterdir()) == [], "no half-written checkpoint"


def test_documented_yaml_values_work_unquoted(tmp_path):
    path = tmp_path / "conf.yml"
    path.write_text("data:\n  videos: v\ntrain:\n  mixed_precision: no\n")  # as training_conf.yml's comment lists it
    assert load_train_config(path).train.mixed_precision == "no"
    assert load_train_config(None, ["data.videos=v", "train.mixed_precision=no"]).train.mixed_precision == "no"
    path.write_text("data:\n  recursive: no\n  videos: v\n")  # a YAML 1.1 boolean is not silently read
    with pytest.raises(ValueError, match="data.recursive: expected bool, got 'no'"):
        load_train_config(path)


def _final_weights(run: Path) -> dict:
    return load_file(run / "model" / "model.safetensors")


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tmp_path, tiny_bundle, clips12):
    """SIGKILL at a random step, start again: the final weights equal an uninterrupted run's."""
    cache = tmp_path / "cache"
    config = tiny_config(tmp_path, tiny_bundle, clips12, max_steps=30, save_every=3, eval_every=6)
    def command(output_dir: Path) -> list[str]:  # both runs in fresh processes: same threads, same state
        return [sys.executable, str(REPO / "code/training/training.py"), "--config", str(config), "--quiet",
                "--set", f"output_dir={output_dir}", "--set", f"data.cache_dir={cache}"]

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    result = subprocess.run(command(straight), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr

    kill_after = np.random.default_rng().integers(4, 20)  # a random step past the first checkpoint
    process = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        done = [r["step"] for r in metrics(killed) if r["split"] == "train"] if (killed / "metrics.jsonl").exists() else []
        if done and max(done) >= kill_after:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "model").exists()

    result = subprocess.run(command(killed), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "resuming from" in result.stderr
    a, b = _final_weights(straight), _final_weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _without_time(metrics(killed)) == _without_time(metrics(straight)), "re-run steps are logged once"


# --- proof that it learns -------------------------------------------------------------------
def test_the_encoder_learns_the_video_music_relation(tmp_path, tiny_bundle):
    """Colour picks pitch. After training, held-out clips have clearly lower cross-entropy with
    their own video than with a shuffled one, and than before training."""
    videos = paired_clips(tmp_path / "videos", 16)
    config = tiny_config(tmp_path, tiny_bundle, videos, max_steps=300, eval_every=50, save_every=100)
    assert training_main("--config", config) == 0
    rows = metrics(tmp_path / "run")
    validation = [r for r in rows if r["split"] == "validation"]
    before, after = validation[0], min(validation, key=lambda r: r["loss"])
    test = next(r for r in rows if r["split"] == "test")
    assert before["step"] == 0
    assert after["conditioning_gain"] > 0.2 and test["conditioning_gain"] > 0.1
    assert test["loss"] < before["loss"] - 0.5
    assert test["loss"] < test["null_loss"], "the video helps compared with no video at all"


@pytest.mark.slow
def test_accelerate_launch_with_two_processes(tmp_path, tiny_bundle, clips12):
    """Several devices go through accelerate, with no code path of our own: two CPU processes here."""
    config = tiny_config(tmp_path, tiny_bundle, clips12, max_steps=6, eval_every=3, save_every=3, batch_size=2)
    accelerate = Path(sys.executable).parent / "accelerate"
    result = subprocess.run([str(accelerate), "launch", "--num_processes", "2", "--num_machines", "1", "--cpu",
                             "--mixed_precision", "no", "--dynamo_backend", "no",
                             str(REPO / "code/training/training.py"), "--config", str(config), "--quiet"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "model" / "model.safetensors").is_file()
    assert max(r["step"] for r in metrics(run)) == 6
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best", "step-000003", "step-000006"]


def test_manifest_with_captions_trains(tmp_path, tiny_bundle, clips12):
    """Captions are embedded by MusicGen's T5 and joined with the video tokens, per clip."""
    manifest = tmp_path / "pairs.jsonl"
    rows = [{"video": str(v), "caption": "calm piano" if i % 2 else ""} for i, v in enumerate(sorted(clips12.glob("*.mp4")))]
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    config = tiny_config(tmp_path, tiny_bundle, clips12, max_steps=3, eval_every=3)
    text = yaml.safe_load(config.read_text())
    text["data"].update(layout="manifest", manifest=str(manifest), videos=None)
    config.write_text(yaml.safe_dump(text))
    assert training_main("--config", config) == 0
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
