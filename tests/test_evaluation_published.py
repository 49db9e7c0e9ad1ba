"""evaluate.py's published metrics: the named options and their defaults, CLAP-music's windowing, the
benchmark protocols, and one score-only run with every metric on the reference networks' real
architectures (random weights in a fake torch hub cache; ImageBind through its small stand-in)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from reference_networks import save_imagebind_stand_in, save_panns, save_passt, save_vggish
from test_evaluation_cli import evaluate_main
from video_bgm.evaluation import protocols, suite
from video_bgm.synthetic import write_paired_clips, write_test_audio


# --- which metrics run ------------------------------------------------------------------------
def test_a_metric_is_on_by_default_only_where_its_weights_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    from video_bgm.evaluation.embeddings import ClapMusicEmbedder

    # the Hugging Face cache is the user's: CLAP-music counts as not cached here
    monkeypatch.setattr(ClapMusicEmbedder, "is_cached", staticmethod(lambda: False))
    assert suite.selected({}) == []
    save_vggish()
    assert suite.selected({}) == ["vggish"]
    assert suite.selected({"vggish": False}) == []
    assert suite.selected({"passt": True, "imagebind": None}) == ["vggish", "passt"], "asked for: on, cached or not"
    with pytest.raises(ValueError, match="unknown metric"):
        suite.selected({"fid": True})


def test_asking_for_a_metric_whose_weights_cannot_be_fetched_is_one_line_before_anything_runs(
        tmp_path, tiny_bundle, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    reference = tmp_path / "ref"
    reference.mkdir()
    write_test_audio(reference / "c0.wav", 1.0, 32000, 1)
    musicgen = Path(tiny_bundle["video-encoder"]).parent / "musicgen-mono"
    code = evaluate_main("--generated", reference, "--reference", reference, "--musicgen", musicgen, "--no-clap",
                         "--panns", "--out", tmp_path / "out")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "Cnn14_mAP=0.431.pth is not in" in err[0] and err[0].endswith("or leave it out with --no-panns")
    assert not (tmp_path / "out" / "metrics.json").exists()


# --- CLAP-music as fadtk windows it -----------------------------------------------------------
def test_clap_music_takes_a_window_every_second_zero_padded_and_16_bit(tiny_clap):
    from video_bgm.evaluation.embeddings import ClapMusicEmbedder

    clap = ClapMusicEmbedder(str(tiny_clap))  # the tiny CLAP stands in for laion/larger_clap_music: 2 s windows
    rate, window = clap.sample_rate, clap.window
    audio = np.random.default_rng(0).uniform(-1.2, 1.2, size=int(2.5 * rate)).astype(np.float32)
    windows = clap.windows(audio)
    assert [len(w) for w in windows] == [window] * 3, "starts at 0, 1 and 2 s, each padded to the window"
    quantised = np.trunc(np.clip(audio, -1, 1) * 32767) / 32767
    np.testing.assert_allclose(windows[1][: window - rate // 2], quantised[rate:], atol=1e-7)
    assert not windows[2][rate // 2:].any(), "zero padding, not repeated audio"
    embedded = clap.embed(audio)
    assert embedded.shape == (3, clap.embed(audio[:rate]).shape[1])
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, rtol=1e-5)
    assert clap.settings()["kind"] == "clap-music" and clap.settings()["hop_s"] == 1
    # fadtk resamples with torchaudio's Kaiser sinc: a 44.1 kHz second becomes 48000 samples, a 48 kHz one is kept
    assert clap.resample(audio[:44100], 44100).shape == (48000,)
    np.testing.assert_array_equal(clap.resample(audio, rate), audio)


# --- protocols --------------------------------------------------------------------------------
def test_a_protocol_fixes_clip_length_pieces_and_metrics_but_keeps_what_was_turned_off():
    from video_bgm.evaluation.runner import EvalOptions, with_protocol

    options = with_protocol(EvalOptions(out="o", metrics={"imagebind": False}), "v2m-bench")
    assert (options.seconds, options.takes, options.protocol) == (30.0, 1, "v2m-bench")
    assert options.metrics == {"vggish": True, "panns": True, "passt": True, "imagebind": False}
    with pytest.raises(ValueError, match="unknown protocol"):
        protocols.lookup("musiccaps")


def test_a_protocol_with_another_clip_length_is_one_line(tmp_path, capsys):
    assert evaluate_main("--generated", tmp_path, "--reference", tmp_path, "--out", tmp_path / "o",
                         "--protocol", "v2m-bench", "--seconds", "10") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["evaluate.py: error: --protocol v2m-bench scores 30 s per clip; leave out --seconds (got 10)"]


# --- every published metric, end to end ------------------------------------------------------
@pytest.fixture
def reference_weights(tmp_path, monkeypatch):
    """All four reference networks' weight files in a fake TORCH_HOME (ImageBind: the small stand-in)."""
    from video_bgm.evaluation import kld

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    save_vggish()
    save_panns()
    save_passt(kld.DEFAULT_LENGTH)
    save_imagebind_stand_in(monkeypatch)


def test_the_v2m_bench_protocol_scores_every_published_metric_in_its_columns(
        tmp_path, tiny_bundle, tiny_clap, reference_weights, monkeypatch, capsys):
    """Score only: 3 reference videos whose colour picks their tone's pitch; the system "same" makes
    each video's own pitch, "other" a pitch no video has. Every metric must prefer "same". The
    protocol's clip length is cut from 30 s to 4 s here (30 s makes this test minutes long on a CPU;
    the test above checks the length the protocol sets)."""
    from video_bgm.evaluation import kld
    from video_bgm.synthetic import PAIRED_PITCHES

    seconds = 4.0
    monkeypatch.setitem(protocols.PROTOCOLS, "v2m-bench",
                        dataclasses.replace(protocols.PROTOCOLS["v2m-bench"], seconds=seconds))
    videos = write_paired_clips(tmp_path / "videos", 3, duration=seconds, fps=2, size=(32, 32))
    generated = tmp_path / "generated"
    for i in range(3):
        for system, freq in (("same", PAIRED_PITCHES[i]), ("other", 1500.0 + 90 * i)):
            (generated / system).mkdir(parents=True, exist_ok=True)
            write_test_audio(generated / system / f"clip{i:02d}.wav", seconds, 44100, 1, freq=freq)
    musicgen = Path(tiny_bundle["video-encoder"]).parent / "musicgen-mono"
    out = tmp_path / "report"
    assert evaluate_main("--generated", generated, "--reference", videos, "--musicgen", musicgen,
                         "--clap", tiny_clap, "--protocol", "v2m-bench", "--out", out, "--case-study", 0) == 0
    assert "V2M-bench (VidMuse) has 300 clips, this reference 3" in capsys.readouterr().err

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "v2m-bench" and metrics["reference"]["seconds"] == seconds
    assert set(metrics["embedding_models"]) == {"encodec", "clap", "vggish", "panns"}
    assert set(metrics["classifiers"]) == {"passt"} and set(metrics["video_music_models"]) == {"imagebind"}
    same, other, reference = (metrics["systems"][k] for k in ("same", "other", "reference"))
    for kind in ("vggish", "panns", "clap", "encodec"):
        assert 0 <= same["fad"][kind] < other["fad"][kind], kind
    # audiocraft's epsilon on the generated side only: a perfect match scores down to -527e-6, not 0
    assert -kld.NUM_CLASSES * kld.EPSILON <= same["kl"]["passt"] < other["kl"]["passt"]
    for system in (same, other, reference):
        assert -1 <= system["imagebind"]["score"] <= 1 and system["imagebind"]["pieces"] == 3
        assert system["imagebind"]["other_videos"] is not None
    assert same["prdc"]["vggish"] is None, "density and coverage need more than 5 pieces"

    report = (out / "report.md").read_text()
    assert "## V2M-bench (VidMuse): the published columns" in report
    assert "| system | KL (PaSST) ↓ | FAD (VGGish) ↓ | FD (PANNs) ↓ | Density ↑ | Coverage ↑ | IB ↑ |" in report
    assert f"| same | {same['kl']['passt']:.3f} | {same['fad']['vggish']:.3f} | {same['fad']['panns']:.3f} | – | – " \
           f"| {same['imagebind']['score']:.3f} |" in report
    assert "## Video-music correspondence (imagebind)" in report

    # Everything the new metrics computed is cached: a second run embeds nothing and scores the same.
    assert metrics["embeddings_computed"] > 0
    assert evaluate_main("--generated", generated, "--reference", videos, "--musicgen", musicgen,
                         "--clap", tiny_clap, "--protocol", "v2m-bench", "--out", out, "--case-study", 0) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["embeddings_computed"] == 0
    assert again["systems"]["same"]["kl"] == same["kl"] and again["systems"]["same"]["imagebind"] == same["imagebind"]
