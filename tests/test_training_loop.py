"""The training loop end to end: model folder, resume (also after SIGKILL), early stopping, full disks,
several processes, captions, and proof that it learns."""

from __future__ import annotations

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

from conftest import REPO, run_script
from training_helpers import metrics, paired_clips, tiny_config, training_main, without_time
from video_bgm.synthetic import write_test_video


def test_training_run_writes_a_model_generate_loads_and_resumes_when_rerun(tmp_path, tiny_bundle, clips12, clip_3s):
    config = tiny_config(tmp_path, tiny_bundle, clips12)
    assert training_main("--config", config) == 0
    run = tmp_path / "run"
    model = run / "model"
    assert {"config.json", "model.safetensors", "training_config.yaml", "metrics.json"} <= {p.name for p in model.iterdir()}
    assert json.loads((run / "split.json").read_text()).keys() == {"training", "validation", "test"}
    rows = metrics(run)
    assert {r["split"] for r in rows} == {"untrained_test", "train", "validation", "test"}
    assert [(r["split"], r["step"]) for r in rows[:2]] == [("untrained_test", 0), ("validation", 0)], \
        "the untrained baselines come first"
    assert json.loads((model / "metrics.json").read_text())["untrained_test"] == {k: v for k, v in rows[0].items()
                                                                                 if k not in ("step", "split", "time")}
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
    assert without_time(metrics(run)) == without_time(rows), "a rerun logs nothing twice"
    assert training_main("--config", config, "--set", "train.max_steps=25") == 0
    assert max(r["step"] for r in metrics(run)) == 25
    assert [r["split"] for r in metrics(run)].count("test") == 1


def test_a_half_written_metrics_line_is_dropped_on_resume(tmp_path):
    from video_bgm.train.loop import trim_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 5, "split": "train"}\n{"step": 9, "split": "train"}\n{"step": 10, "spl')
    trim_metrics(path, 5)
    assert path.read_text() == '{"step": 5, "split": "train"}\n'


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

    losses = iter([9.0, 5.0, 4.0, 4.5, 4.6, 4.7])  # the untrained test, validations, the test
    monkeypatch.setattr(Trainer, "evaluate", lambda self, model, data: {"loss": next(losses), "clips": len(data)})
    config = tiny_config(tmp_path, tiny_bundle, clips12, max_steps=100, eval_every=1, early_stopping_patience=2,
                         save_every=50)
    assert training_main("--config", config) == 0
    validation = [r for r in metrics(tmp_path / "run") if r["split"] == "validation"]
    assert [r["step"] for r in validation] == [0, 1, 2, 3]  # 4.0 at step 1, then two worse: stop
    state = json.loads((tmp_path / "run" / "checkpoints" / "best" / "state.json").read_text())
    assert state["step"] == 1 and state["best_validation_loss"] == 4.0


def test_the_best_checkpoint_by_conditioning_gain(tmp_path, tiny_bundle, clips12, monkeypatch):
    from video_bgm.train.loop import Trainer

    # (loss, gain) of the untrained test, validations at steps 0..3, the test: the loss keeps falling
    values = iter([(9.0, 0.0), (5.0, 0.0), (4.0, 0.3), (3.0, 0.1), (2.0, 0.2), (2.0, 0.2)])
    monkeypatch.setattr(Trainer, "evaluate", lambda self, model, data: dict(
        zip(("loss", "conditioning_gain"), next(values)), clips=len(data)))
    config = tiny_config(tmp_path, tiny_bundle, clips12, max_steps=100, eval_every=1, early_stopping_patience=2,
                         save_every=50, best_by="gain")
    assert training_main("--config", config) == 0
    assert [r["step"] for r in metrics(tmp_path / "run") if r["split"] == "validation"] == [0, 1, 2, 3]
    state = json.loads((tmp_path / "run" / "checkpoints" / "best" / "state.json").read_text())
    assert state["step"] == 1 and state["best_validation"]["conditioning_gain"] == 0.3
    assert json.loads((tmp_path / "run" / "model" / "metrics.json").read_text())["best_by"] == "gain"


def test_best_by_gain_needs_two_validation_clips(tmp_path, tiny_bundle, clips12, capsys):
    config = tiny_config(tmp_path, tiny_bundle, clips12, max_steps=2, best_by="gain")
    assert training_main("--config", config, "--set", "data.val_fraction=0.1") == 1  # 1 of 12 clips
    assert "train.best_by: gain needs two or more validation clips" in capsys.readouterr().err


def test_a_collapsed_encoder_is_named_in_the_log_and_the_model_card(tmp_path, tiny_bundle, capsys):
    """Every clip shows the same picture: the loss falls (the music prior) but no video can explain it."""
    from video_bgm.synthetic import PAIRED_PITCHES

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(8):
        write_test_video(videos / f"grey{i}.mp4", duration=3.0 + 0.1 * i, size=(32, 32), color_fn=lambda t: (128, 128, 128),
                         audio_freq=PAIRED_PITCHES[i % 4], audio_channels=1)
    config = tiny_config(tmp_path, tiny_bundle, videos, max_steps=30, eval_every=10)
    assert training_main("--config", config) == 0
    err = capsys.readouterr().err
    assert "warning: the validation loss fell by" in err and "collapsed" in err, err[-2000:]
    model = tmp_path / "run" / "model"
    assert "collapsed" in json.loads((model / "metrics.json").read_text())["warnings"][0]
    assert "## Warnings" in (model / "README.md").read_text()


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
    assert without_time(metrics(killed)) == without_time(metrics(straight)), "re-run steps are logged once"


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
    assert json.loads((tmp_path / "run" / "model" / "metrics.json").read_text())["warnings"] == []


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


def test_threads_sets_torchs_thread_count(tmp_path, tiny_bundle, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    videos = tmp_path / "videos"
    videos.mkdir()
    write_test_video(videos / "silent.mp4", duration=2.0, audio=False)  # fails after the threads are set
    assert training_main("--config", tiny_config(tmp_path, tiny_bundle, videos), "--threads", "1") == 1
    assert calls == [1]
