"""Dataset preparation from raw footage: synthetic long videos with shot cuts at known times, music,
speech-like and silent stretches, a static and a black stretch, and a segment duplicated in another
source. The filter tests separate with a band split (the synthetic speech lives in 500-3000 Hz, the
music below 300 Hz: a test double with Demucs's interface, so each planted clip has a known answer);
the Demucs tests run the real ``demucs`` code on a small randomly initialised HTDemucs."""

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

from conftest import REPO, load_script
from video_bgm import media
from video_bgm.data.prepare import PrepareSettings, plan_clips, prepare
from video_bgm.synthetic import SPEECH_BAND, Shot, write_footage, write_text_file

FPS = 10
SETTINGS = dict(clip_seconds=4.0, min_seconds=2.0, val_fraction=0.25, test_fraction=0.25)
# source -> shots; the cuts fall between them
FOOTAGE = {
    "alpha": [Shot(9, seed=1), Shot(4, "static", seed=2), Shot(4, "moving", "speech", seed=3),
              Shot(4, "moving", "silence", seed=4), Shot(4, "black")],
    "beta": [Shot(6, seed=5), Shot(4, seed=1)],   # its second shot repeats alpha's first 4 s
    "trips/gamma": [Shot(8, seed=6)],
    "delta": [Shot(8, seed=7)],
}
EXPECTED = {  # clip id -> why it is dropped (None: kept)
    "alpha/t00000.000": None, "alpha/t00004.000": None, "alpha/t00008.000": "shorter than --min-seconds",
    "alpha/t00009.000": "static picture", "alpha/t00013.000": "speech or singing",
    "alpha/t00017.000": "music too quiet", "alpha/t00021.000": "black picture",
    "beta/t00000.000": None, "beta/t00004.000": None, "beta/t00006.000": "near-duplicate of alpha/t00000.000",
    "trips/gamma/t00000.000": None, "trips/gamma/t00004.000": None,
    "delta/t00000.000": None, "delta/t00004.000": None,
}


class BandSeparator:
    """Demucs's interface; "vocals" is the 500-3000 Hz band, "music" the rest (see the module docstring)."""

    name, sample_rate, channels = "band-split", 44100, 2

    def separate_batch(self, clips):
        out = []
        for audio in clips:
            spectrum = np.fft.rfft(audio, axis=1)
            freqs = np.fft.rfftfreq(audio.shape[1], 1 / self.sample_rate)
            spectrum[:, (freqs < SPEECH_BAND[0]) | (freqs > SPEECH_BAND[1])] = 0
            vocals = np.fft.irfft(spectrum, audio.shape[1], axis=1).astype(np.float32)
            out.append((audio - vocals, vocals))
        return out


def write_sources(folder: Path) -> dict[str, list[float]]:
    cuts = {}
    for name, shots in FOOTAGE.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        cuts[name] = write_footage(folder / f"{name}.mp4", shots, fps=FPS)[1]
    write_text_file(folder / "broken.mp4")
    (folder / "delta.txt").write_text("a walk in the forest\n")
    return cuts


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("footage")
    cuts = write_sources(root / "src")
    lines = []
    result = prepare(root / "src", root / "out", PrepareSettings(**SETTINGS), show_progress=False,
                     log=lines.append, separator=BandSeparator())
    return root, cuts, result, lines


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_detected_cuts_are_within_one_frame_of_the_planted_ones(prepared):
    root, cuts, _, _ = prepared
    assert cuts["alpha"] == [9.0, 13.0, 17.0, 21.0] and cuts["beta"] == [6.0]
    starts = {}
    for row in manifest(root / "out"):
        starts.setdefault(row["source"], set()).add(row["start"])
    for source, planted in cuts.items():
        for cut in planted:  # every shot starts a clip, at the detected cut
            assert min(abs(s - cut) for s in starts[source]) <= 1 / FPS, (source, cut)


def test_each_planted_bad_clip_is_dropped_for_its_reason_and_the_good_ones_kept(prepared):
    root, _, result, lines = prepared
    rows = manifest(root / "out")
    assert {r["id"]: r["dropped"] for r in rows} == EXPECTED
    assert all(r["kept"] == (r["dropped"] is None) for r in rows)
    assert result.kept == 8 and result.dropped["near-duplicate"] == 1
    assert len(result.unreadable) == 1 and "broken.mp4" in result.unreadable[0][0]
    assert lines == [f"skipping {result.unreadable[0][1]}"], "an unreadable source is one line"
    by_id = {r["id"]: r for r in rows}
    assert by_id["alpha/t00013.000"]["scores"]["vocal_share"] > 0.5 > by_id["alpha/t00000.000"]["scores"]["vocal_share"]
    assert by_id["beta/t00006.000"]["duplicate_of"] == "alpha/t00000.000"
    assert by_id["delta/t00000.000"]["caption"] == "a walk in the forest" and by_id["alpha/t00000.000"]["caption"] is None
    summary = (root / "out" / "summary.md").read_text()
    assert "**8 kept**" in summary and "| static picture | 1 |" in summary and "broken.mp4" in summary
    for score in ("loudness", "vocal_share", "motion", "black_share", "duplicate_share"):
        assert (root / "out" / f"summary-{score}.png").read_bytes()[:4] == b"\x89PNG"


def test_clips_are_exact_in_time(prepared):
    root, _, _, _ = prepared
    for row in (r for r in manifest(root / "out") if r["kept"]):
        clip, stem = root / "out" / row["video"], root / "out" / row["audio"]
        length = row["end"] - row["start"]
        assert abs(media.probe_video(clip).duration - length) < 1e-3, row["id"]
        assert media.decode_audio(stem, 44100, 2).shape[1] == round(length * 44100), row["id"]
        # the clip's first and last frames are the source's frames at start and just before the end
        source = row["source_path"]
        source_end = media.probe_video(source).duration
        ours = media.sample_frames(clip, FPS)[0].float()
        for index, t in ((0, row["start"]), (-1, row["end"] - 1 / FPS)):
            near = [media.sample_frames(source, FPS, start=t + d, duration=0.01)[0][0].float()
                    for d in (0.0, -1 / FPS, 1 / FPS) if 0 <= t + d < source_end - 1e-3]
            errors = [float((ours[index] - frame).abs().mean()) for frame in near]
            assert errors[0] < 0.5 * min(errors[1:]), (row["id"], index, errors)  # re-encoding: within compression noise


def test_no_source_has_clips_in_two_splits(prepared):
    root, _, _, _ = prepared
    rows = [r for r in manifest(root / "out") if r["kept"]]
    splits = {}
    for r in rows:
        splits.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits.values()), splits
    assert {s for (s,) in splits.values()} == {"training", "validation", "test"}
    assert all(r["split"] is None for r in manifest(root / "out") if not r["kept"])


def test_a_rerun_redoes_nothing(prepared, monkeypatch):
    root, _, _, _ = prepared
    before = (root / "out" / "manifest.jsonl").read_bytes()
    calls = []
    for name in ("sample_frames", "decode_audio", "probe_video"):
        monkeypatch.setattr(media, name, lambda *a, _n=name, **k: calls.append(_n))
    import video_bgm.data.cutting as cutting
    import video_bgm.shots as shots

    monkeypatch.setattr(cutting, "cut_clip", lambda *a, **k: calls.append("cut_clip"))
    monkeypatch.setattr(shots, "detect_cuts", lambda *a, **k: calls.append("detect_cuts"))
    prepare(root / "src", root / "out", PrepareSettings(**SETTINGS), show_progress=False, log=lambda _: None,
            separator=BandSeparator())
    assert calls == [] and (root / "out" / "manifest.jsonl").read_bytes() == before


def test_plan_keeps_clips_inside_shots_unless_across_cuts():
    assert plan_clips(25.0, [9.0, 13.0], 4.0, 2.0) == [
        (0.0, 4.0, None), (4.0, 8.0, None), (8.0, 9.0, "shorter than --min-seconds"), (9.0, 13.0, None),
        (13.0, 17.0, None), (17.0, 21.0, None), (21.0, 25.0, None)]
    assert plan_clips(10.0, [], 4.0, 2.0) == [(0.0, 4.0, None), (4.0, 8.0, None), (8.0, 10.0, None)]
    assert plan_clips(3.0, [], 30.0, 5.0) == [(0.0, 3.0, "shorter than --min-seconds")]


def test_near_duplicates_are_found_across_sources_only():
    from video_bgm.data.scores import duplicate_scores

    rng = np.random.default_rng(0)
    a = [int(x) for x in rng.integers(0, 2**63, 6)]
    noisy = [h ^ (1 << int(rng.integers(0, 63))) for h in a[:4]] + [int(x) for x in rng.integers(0, 2**63, 2)]
    got = duplicate_scores([("a/1", "a", a), ("a/2", "a", a), ("b/1", "b", noisy)], max_distance=2)
    assert got["a/1"] == (0.0, None) and got["a/2"] == (0.0, None), "a source repeating itself is not a duplicate"
    assert got["b/1"] == (pytest.approx(4 / 6), "a/1")


def test_no_pair_within_the_distance_is_missed_by_the_bands():
    """Brute force against the banded search, with pairs at exactly the distance, their bits spread out."""
    from video_bgm.data.scores import duplicate_scores

    rng = np.random.default_rng(1)
    for distance in (0, 3, 8, 12):
        base = [int(x) for x in rng.integers(0, 2**63, 20)]
        copies = []
        for h in base:
            bits = rng.choice(63, distance, replace=False) if distance else []
            copies.append(h ^ sum(1 << int(b) for b in bits))
        far = [h ^ (2**63 - 1) for h in base[:5]]  # every bit flipped: never near
        got = duplicate_scores([("a/1", "a", base), ("b/1", "b", copies), ("c/1", "c", far)], max_distance=distance)
        assert got["b/1"] == (1.0, "a/1"), distance
        assert got["c/1"][0] == 0.0


# --- the command line, SIGKILL, Demucs ------------------------------------------------------
def tiny_demucs(folder: Path) -> Path:
    """A small randomly initialised HTDemucs (8 channels, not 48; one transformer layer, not 5; 1 s
    segments), as a Demucs --repo folder: everything after loading runs the real demucs code."""
    from video_bgm.data.separation import random_htdemucs, save_demucs_package

    model = random_htdemucs(0, channels=8, t_layers=1, bottom_channels=0, segment=1)
    save_demucs_package(model, folder, "tiny0001")
    return folder


def cli(*argv) -> list[str]:
    return [sys.executable, str(REPO / "code/tools/prepare_dataset.py"), *map(str, argv), "--quiet"]


def test_the_demucs_code_path_on_a_random_htdemucs(tmp_path):
    from demucs.htdemucs import HTDemucs

    from video_bgm.data.separation import load_separator

    separator = load_separator("tiny0001", tiny_demucs(tmp_path / "repo"))
    assert isinstance(separator.model, HTDemucs) and separator.sample_rate == 44100
    mix = np.random.default_rng(0).uniform(-0.3, 0.3, (2, 44100)).astype(np.float32)
    (music, vocals), (music2, _) = separator.separate_batch([mix, mix])  # one pass for both
    assert music.shape == vocals.shape == mix.shape and np.isfinite(music).all()
    assert np.allclose(music, music2, atol=1e-5), "a batch separates each clip as alone"
    assert np.allclose(separator.separate(mix)[0], music, atol=1e-5), "no random shifts: the same stems every time"


def test_the_released_htdemucs_architecture_has_its_size():
    from video_bgm.data.separation import random_htdemucs

    assert sum(p.numel() for p in random_htdemucs().parameters()) == 41_984_456


def test_missing_demucs_weights_offline_is_one_line_naming_the_file(monkeypatch):
    import urllib.error

    import torch

    from video_bgm.data.separation import load_separator
    from video_bgm.errors import ModelError

    def offline(*a, **k):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(ModelError) as err:
        load_separator("htdemucs")
    message = str(err.value)
    assert "\n" not in message and "955717e8-8726e21a.th" in message and "hub/checkpoints" in message


@pytest.mark.slow
def test_sigkill_mid_run_resumes_to_the_same_manifest(tmp_path):
    """With the real Demucs code (tiny random model): killed while separating, run again, the same result."""
    src = tmp_path / "src"
    src.mkdir()
    write_footage(src / "delta.mp4", FOOTAGE["delta"], fps=FPS)
    repo = tiny_demucs(tmp_path / "repo")
    options = ["--clip-seconds", 4, "--min-seconds", 2, "--demucs-model", "tiny0001", "--demucs-repo", repo,
               "--device", "cpu", "--min-loudness", -70]
    straight = subprocess.run(cli(src, tmp_path / "straight", *options), capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    killed = tmp_path / "killed"
    process = subprocess.Popen(cli(src, killed, *options), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None and not list((killed / "work" / "music").rglob("*.json")):
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "manifest.jsonl").exists()
    assert not [p for p in killed.rglob("*.wav") if p.stat().st_size < 44], "no half-written stem"
    resumed = subprocess.run(cli(src, killed, *options), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert (killed / "manifest.jsonl").read_bytes() == (tmp_path / "straight" / "manifest.jsonl").read_bytes()
    rows = manifest(killed)
    assert any(r["kept"] for r in rows) and all((killed / r["audio"]).is_file() for r in rows if r["kept"])


def prepare_main(*argv) -> int:
    """prepare_dataset.py's main in-process, as its command line runs it; output goes to capsys."""
    from video_bgm.cli import run
    from video_bgm.commands import prepare as command

    with pytest.raises(SystemExit) as exit_info:
        run(lambda: command.main([str(a) for a in argv] + ["--quiet"]), "prepare_dataset.py")
    return exit_info.value.code


@pytest.mark.parametrize("case, message", [
    ("inside", "the output folder must be outside"),
    ("missing", "nowhere: no such file or folder"),
    ("empty", "no videos found"),
    ("option", "--min-seconds: must be in (0, clip seconds]"),
])
def test_bad_input_is_one_line_and_touches_nothing(tmp_path, case, message, capsys):
    src = tmp_path / "src"
    src.mkdir()
    if case != "empty":
        write_text_file(src / "a.mp4")
    before = sorted(p.name for p in src.rglob("*"))
    target = {"inside": (src, src / "out"), "missing": (tmp_path / "nowhere", tmp_path / "out"),
              "empty": (src, tmp_path / "out"), "option": (src, tmp_path / "out", "--min-seconds", 40)}[case]
    assert prepare_main(*target) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prepare_dataset.py: error: ") and message in err[0]
    assert sorted(p.name for p in src.rglob("*")) == before


# --- scale: worker processes and Ray give the same manifest -------------------------------------
def small_set(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("beta", "delta"):
        write_footage(folder / f"{name}.mp4", FOOTAGE[name], fps=FPS)
    return folder


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    """The small set prepared in this process: what any number of workers must reproduce."""
    root = tmp_path_factory.mktemp("scale")
    src = small_set(root / "src")
    prepare(src, root / "one", PrepareSettings(**SCALE), show_progress=False, log=lambda _: None)
    rows = manifest(root / "one")
    assert len(rows) == 5 and all(r["kept"] for r in rows)  # beta repeats alpha, which is not here
    return src, rows


SCALE = dict(SETTINGS, separate="none")


@pytest.mark.slow
def test_worker_processes_give_the_same_manifest(one_worker, tmp_path):
    src, rows = one_worker
    prepare(src, tmp_path / "two", PrepareSettings(**SCALE), workers=2, show_progress=False, log=lambda _: None)
    assert manifest(tmp_path / "two") == rows


@pytest.mark.slow
def test_a_local_ray_runtime_gives_the_same_manifest(one_worker, tmp_path):
    ray = pytest.importorskip("ray")
    src, rows = one_worker
    try:
        prepare(src, tmp_path / "ray", PrepareSettings(**SCALE), ray_address="local", show_progress=False,
                log=lambda _: None)
    finally:
        ray.shutdown()
    assert manifest(tmp_path / "ray") == rows


# --- a prepared folder trains and evaluates ---------------------------------------------------
@pytest.mark.slow
def test_a_prepared_folder_trains_end_to_end_and_evaluates(prepared, tmp_path, tiny_bundle, tiny_clap):
    import yaml

    from training_helpers import tiny_config, training_main

    root, _, _, _ = prepared
    config = tiny_config(tmp_path, tiny_bundle, root / "out", max_steps=4, eval_every=2, save_every=2)
    text = yaml.safe_load(config.read_text())
    text["data"].update(layout="manifest", manifest=str(root / "out" / "manifest.jsonl"), videos=None,
                        val_fraction=SETTINGS["val_fraction"], test_fraction=SETTINGS["test_fraction"])
    config.write_text(yaml.safe_dump(text))
    assert training_main("--config", config) == 0
    run = tmp_path / "run"
    split = json.loads((run / "split.json").read_text())
    rows = {r["id"]: r for r in manifest(root / "out") if r["kept"]}
    assert sorted(sum(split.values(), [])) == sorted(rows), "training reads the kept clips only"
    assert all(rows[i]["split"] == name for name, ids in split.items() for i in ids), "the manifest's split is training's"

    evaluate = load_script("code/evaluation/evaluate.py")
    from video_bgm.cli import run as run_cli

    with pytest.raises(SystemExit) as done:
        run_cli(lambda: evaluate.main([str(a) for a in (
            "--model", run / "model", "--data", run, "--split", "test", "--out", tmp_path / "report", "--clap",
            tiny_clap, "--seconds", 1.0, "--takes", 1, "--no-musicgen-baselines", "--quiet")]), "evaluate.py")
    assert done.value.code == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["reference"]["clips"] == len(split["test"]) and metrics["systems"]["model"]["pieces"] == len(split["test"])
