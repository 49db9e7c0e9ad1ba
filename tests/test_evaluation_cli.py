"""evaluate.py end to end with the tiny models: generate + score with baselines, a re-run that
only scores, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import load_script, run_script
from training_helpers import paired_clips


def evaluate_main(*argv) -> int:
    from video_bgm.cli import run

    module = load_script("code/evaluation/evaluate.py")
    with pytest.raises(SystemExit) as exit_info:
        run(lambda: module.main([str(a) for a in argv] + ["--quiet"]), "evaluate.py")
    return exit_info.value.code


def test_generate_and_score_with_baselines_then_rerun_only_scores(tmp_path, tiny_bundle, tiny_clap):
    videos = paired_clips(tmp_path / "videos", 2, duration=1.2)
    model = tiny_bundle["video-encoder"]
    out = tmp_path / "report"
    argv = ["--model", model, "--baseline-model", model, "--data", videos, "--out", out, "--clap", tiny_clap,
            "--seconds", 1.0, "--takes", 2, "--case-study", 2]
    assert evaluate_main(*argv) == 0

    metrics = json.loads((out / "metrics.json").read_text())
    systems = metrics["systems"]
    assert set(systems) == {"model", "baseline-video-encoder", "musicgen-unconditional", "musicgen-text", "reference"}
    for slug in ("model", "musicgen-unconditional", "musicgen-text"):
        s = systems[slug]
        assert s["pieces"] == 4 and s["videos"] == 2
        assert all(np.isfinite(s["fad"][k]) and s["fad"][k] >= 0 for k in ("clap", "encodec"))
        assert s["diversity"]["clap"]["across_takes"] is not None
        assert s["retrieval"]["candidates"] == 2 and s["retrieval"]["judge"] == "model"
    assert systems["musicgen-text"]["generation"]["prompt"] == "background music"
    assert systems["musicgen-unconditional"]["generation"]["guidance_scale"] == 1.0
    assert systems["reference"]["retrieval"]["candidates"] == 2
    for slug, s in systems.items():  # every system, baselines and the reference included, has the rhythm measures
        assert set(s["rhythm"]) >= {"bcs", "bhs", "cut_beat_iou", "cuts_on_beat", "cuts"}, slug
    assert systems["reference"]["rhythm"]["bhs"] is None  # LORIS's scores compare with the reference
    gain = metrics["conditioning"]["model"]
    assert gain["clips"] == 2 and gain["conditioning_gain"] == pytest.approx(gain["shuffled_loss"] - gain["loss"])

    generated = out / "generated"
    # the baseline is the same model with the same seeds: the same pieces, bit for bit
    for wav in (generated / "model").glob("*.wav"):
        assert wav.read_bytes() == (generated / "baseline-video-encoder" / wav.name).read_bytes()
    assert systems["baseline-video-encoder"]["fad"] == pytest.approx(systems["model"]["fad"])
    # different systems make different music
    assert (generated / "model/clip00.take0.wav").read_bytes() != (generated / "musicgen-text/clip00.take0.wav").read_bytes()
    assert (generated / "model/clip00.take0.wav").read_bytes() != (generated / "model/clip00.take1.wav").read_bytes()
    # ... that sounds different, not only other bytes: the tiny codec decodes other codes to other audio
    import soundfile

    pieces = [soundfile.read(generated / f"model/clip0{i}.take0.wav")[0].ravel() for i in (0, 1)]
    n = min(map(len, pieces))
    assert abs(np.corrcoef(pieces[0][:n], pieces[1][:n])[0, 1]) < 0.9
    assert systems["model"]["diversity"]["encodec"]["across_videos"] > 0.001  # 0.000 with a codec that ignored its codes
    assert "order_gain" in gain and len(gain["timeline"]["loss"]) == 1  # 1 s of music: one second

    page = (out / "index.html").read_text()
    assert "Audio quality and diversity" in page and "Video retrieval" in page and "MusicGen, unconditional" in page
    assert "Conditioning gain on the reference pairs" in (out / "report.md").read_text()
    assert "Rhythm: beats against the reference music" in page
    for plot in ("fad_clap.png", "fad_encodec.png", "retrieval_mrr.png", "case_study.png", "conditioning_gain.png"):
        assert (out / "plots" / plot).stat().st_size > 1000, plot
        assert f"plots/{plot}" in page

    # A second run with the same settings generates and embeds nothing: it only scores.
    stamps = {p: p.stat().st_mtime_ns for p in generated.rglob("*.wav")}
    assert evaluate_main(*argv) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["embeddings_computed"] == 0
    assert {p: p.stat().st_mtime_ns for p in generated.rglob("*.wav")} == stamps
    assert again["systems"]["model"]["fad"] == metrics["systems"]["model"]["fad"]


@pytest.mark.parametrize("args, message", [
    (["--model", "m"], "--model needs --data"),
    (["--generated", "g"], "--generated needs --reference"),
    (["--model", "m", "--data", "nowhere"], "nowhere: no such file or folder"),
    (["--model", "m", "--data", "d", "--takes", "0"], "--takes: must be >= 1"),
])
def test_bad_input_is_one_line(tmp_path, args, message, capsys):
    (tmp_path / "d").mkdir()
    args = [a if a not in ("d", "nowhere", "g") else str(tmp_path / a) for a in args]
    assert evaluate_main(*args, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_clap_that_cannot_load_fails_before_generating_and_names_no_clap(tmp_path, tiny_bundle, capsys, monkeypatch):
    from video_bgm.pipeline import VideoBGM

    videos = paired_clips(tmp_path / "videos", 2, duration=1.2)
    monkeypatch.setattr(VideoBGM, "generate", lambda *a, **k: pytest.fail("generated before checking CLAP"))
    code = evaluate_main("--model", tiny_bundle["video-encoder"], "--data", videos, "--out", tmp_path / "out",
                         "--clap", "laion/not-cached")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "laion/not-cached" in err[0] and err[0].endswith("or leave the CLAP metrics out with --no-clap")
    assert not (tmp_path / "out" / "generated").exists()


def test_the_script_runs_from_the_repo(tmp_path):
    result = run_script("code/evaluation/evaluate.py", "--generated", tmp_path, "--out", tmp_path / "o")
    assert result.returncode == 1
    assert result.stderr.strip() == "evaluate.py: error: --generated needs --reference (or --data) to compare with"
