"""Scene-aware windows (--follow-cuts) and the rerank, on the plan (a pure function) and end to end
with the tiny models: each window is conditioned on its own scene, prompts carry the music across."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from test_windows import check_prompts_continue_the_music, check_seams, expected_condition, record_windows, seam_samples
from video_bgm import windows
from video_bgm.config import GenerationParams
from video_bgm.synthetic import write_test_video
from video_bgm.windows import Window, plan_scenes

CUTS = [2.0, 4.0]  # planted: a new colour at each
COLOURS = [(200, 30, 30), (20, 20, 90), (60, 230, 60)]


@pytest.fixture(scope="module")
def cut_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("follow") / "scenes.mp4"
    return write_test_video(path, duration=6.0, fps=4, size=(64, 48), audio=False,
                            color_fn=lambda t: COLOURS[sum(t >= c - 1e-9 for c in CUTS)])


def test_the_plan_starts_windows_at_cuts_and_splits_long_scenes():
    ws = plan_scenes(450, 250, 100, [125, 150, 300, 440], 100)
    # 150 is only 25 frames after the cut at 125: no window of its own; the scene [125, 300) is
    # longer than a prompted window can sample (150) and splits in two
    assert [(w.new, w.end) for w in ws] == [(0, 125), (125, 213), (213, 300), (300, 440), (440, 450)]
    for w in ws:
        assert w.condition_span == (w.new, w.end)  # its own scene(s), not the prompt's
        assert w.start == max(0, w.new - 100)  # the prompt: the overlap, as without cuts
        assert w.end - w.start <= 250
    # no cuts: windows of the longest length allowed, like the plain plan's
    assert [(w.new, w.end) for w in plan_scenes(400, 250, 100, [], 100)] == [(0, 250), (250, 400)]
    # ... but no window after the first shorter than the minimum: the first gives way
    assert plan_scenes(300, 250, 100, [], 100)[1] == Window(1, 100, 200, 300, 200, 300)
    assert [(w.new, w.end) for w in plan_scenes(1000, 250, 100, [], 100)] == [
        (0, 250), (250, 400), (400, 550), (550, 700), (700, 850), (850, 1000)]


def test_the_plain_plan_conditions_on_the_whole_window():
    w = windows.plan(400, 250, 100)[1]
    assert w.condition_span == (w.start, w.end)


@pytest.mark.slow
def test_follow_cuts_conditions_each_window_on_its_scene(tiny_model, cut_clip, monkeypatch):
    model, mg = tiny_model, tiny_model.musicgen
    calls = record_windows(model, monkeypatch)
    events = []
    params = GenerationParams(seed=0, top_k=50, window=4.0, overlap=2.0, follow_cuts=True, cuts=CUTS,
                              cut_min_seconds=2.0)
    result = model.generate(cut_clip, params, progress=lambda *e: events.append(e))
    assert result.audio.shape == (1, round(6.0 * mg.sample_rate))
    assert result.cuts == CUTS
    rate = mg.frame_rate
    ws = plan_scenes(round(6.0 * rate), 200, 100, [round(c * rate) for c in CUTS], 100)
    assert [(w.new / rate, w.end / rate) for w in ws] == [(0, 2.0), (2.0, 4.0), (4.0, 6.0)]
    assert [e[1:] for e in events if e[0] == "window"] == [(1, 3), (2, 3), (3, 3)]
    for (condition, _, _), w in zip(calls, ws):
        lo, hi = w.condition_span
        torch.testing.assert_close(condition, expected_condition(model, cut_clip, lo / rate, (hi - lo) / rate))
    check_prompts_continue_the_music(calls, ws)
    seams, fade = seam_samples(ws, rate, 640, 100)
    check_seams(result.audio, seams, fade, mg.sample_rate)


@pytest.mark.slow
def test_rerank_samples_candidates_as_rows_and_keeps_the_best(tiny_model, cut_clip, monkeypatch):
    model = tiny_model
    calls = record_windows(model, monkeypatch)
    params = GenerationParams(seed=1, top_k=50, cuts=[2.0], candidates=2, duration=4.0)  # one window, one cut
    result = model.generate(cut_clip, params)
    assert [c[2].shape[0] for c in calls] == [2]  # two candidates, rows of one batch
    (rerank,) = result.reranks
    assert len(rerank.scores) == 2 and rerank.scores[rerank.kept] == min(rerank.scores)
    assert f"kept {rerank.kept + 1}" in result.notes()[0]
    assert np.isfinite(result.audio).all() and result.audio.shape[1] == round(4.0 * model.sample_rate)


def test_bad_cut_options_are_rejected():
    with pytest.raises(ValueError, match="candidates"):
        GenerationParams(candidates=9).validate()
    with pytest.raises(ValueError, match="cut-min-seconds: must be at least 2 s"):
        windows.check_min_scene(1.0)
    with pytest.raises(ValueError, match="nudge"):
        GenerationParams(nudge=20).validate()


def _generate(*argv):
    from conftest import call_main, load_script

    return call_main(load_script("code/inference/generate.py"), "generate.py", *argv)


@pytest.mark.slow
def test_generate_cli_follows_given_cuts_reranks_and_nudges(tmp_path, tiny_bundle, cut_clip):
    cuts = tmp_path / "cuts.txt"
    cuts.write_text("# markers\n00:02.0\n4\n")
    code, out, err = _generate(cut_clip, "--model", tiny_bundle["video-encoder"], "--out", tmp_path / "o.mp4",
                               "--follow-cuts", "--cuts", cuts, "--cut-min-seconds", 2, "--window", 4,
                               "--overlap", 2, "--candidates", 2, "--nudge", 3, "--seed", 0, "--top-k", 50, "--quiet")
    assert code == 0, err
    assert "window 2: cut at 2.00 s: 2 candidates" in out and "window 3: cut at 4.00 s" in out
    assert "nudge (" in out
    assert (tmp_path / "o.wav").is_file()


def test_a_bad_cuts_file_is_one_line_before_the_model_loads(tmp_path, cut_clip):
    cuts = tmp_path / "cuts.txt"
    cuts.write_text("2.0\nlater\n")
    code, out, err = _generate(cut_clip, "--model", tmp_path / "no-model", "--out", tmp_path / "o.mp4",
                               "--follow-cuts", "--cuts", cuts)
    assert code != 0 and err.strip().splitlines() == [f"generate.py: error: {cuts}: line 2: 'later' is not a time in seconds"]
