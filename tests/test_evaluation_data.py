"""evaluate.py on given music (score only) and on a training run's split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_evaluation_cli import evaluate_main
from training_helpers import metrics as training_metrics
from training_helpers import paired_clips, tiny_config, training_main
from video_bgm.synthetic import write_test_audio


def test_score_only_ranks_matching_music_closer(tmp_path, tiny_bundle, tiny_clap):
    """Reference tones at 220 Hz; one system makes 220 Hz too, the other 880 Hz: FAD must say so."""
    reference, generated = tmp_path / "ref", tmp_path / "gen"
    for folder in (reference, generated / "same", generated / "other"):
        folder.mkdir(parents=True)
    for i in range(4):
        write_test_audio(reference / f"c{i}.wav", 2.0 + 0.25 * i, 32000, 1, freq=220.0)
        for take in range(2):
            write_test_audio(generated / "same" / f"c{i}.take{take}.wav", 2.1 + 0.2 * i + 0.1 * take, 44100, 1, freq=220.0)
            write_test_audio(generated / "other" / f"c{i}.take{take}.wav", 2.0, 44100, 1, freq=880.0 + 40 * i + 20 * take)
    musicgen = Path(tiny_bundle["video-encoder"]).parent / "musicgen-mono"
    out = tmp_path / "report"
    assert evaluate_main("--generated", generated, "--reference", reference, "--musicgen", musicgen,
                         "--clap", tiny_clap, "--out", out, "--seconds", 2.0) == 0
    systems = json.loads((out / "metrics.json").read_text())["systems"]
    assert set(systems) == {"same", "other", "reference"}
    for kind in ("clap", "encodec"):
        assert systems["same"]["fad"][kind] < systems["other"]["fad"][kind], kind
    # "other" varies its pitch across videos and takes; "same" does not
    assert systems["other"]["diversity"]["encodec"]["across_takes"] > systems["same"]["diversity"]["encodec"]["across_takes"]
    assert "retrieval" not in systems["same"], "no video model: no correspondence numbers"


def test_a_training_runs_test_split_gives_the_trainings_own_test_numbers(tmp_path, tiny_bundle):
    videos = paired_clips(tmp_path / "videos", 8)
    assert training_main("--config", tiny_config(tmp_path, tiny_bundle, videos, max_steps=3, eval_every=3)) == 0
    run = tmp_path / "run"
    out = tmp_path / "report"
    assert evaluate_main("--model", run / "model", "--data", run, "--split", "test", "--out", out, "--no-clap",
                         "--no-musicgen-baselines", "--takes", 1, "--seconds", 1.0, "--case-study", 0) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    test_ids = json.loads((run / "split.json").read_text())["test"]
    assert sorted(metrics["systems"]["model"]["retrieval"]["ids"]) == sorted(test_ids)
    logged = next(r for r in training_metrics(run) if r["split"] == "test")
    ours = metrics["conditioning"]["model"]
    assert ours["segment_seconds"] == 2.0, "the run's training segment"
    for key in ("loss", "shuffled_loss", "null_loss", "conditioning_gain"):
        assert ours[key] == pytest.approx(logged[key], abs=1e-5), key
    assert (out / "plots" / "training_curves.png").is_file()
    assert metrics["training_log"] == str(run / "metrics.jsonl")
