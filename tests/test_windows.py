"""Windowed generation: the plan, each window's own video span, prompts that continue the music,
seams without gaps or clicks, and memory that stays flat however many windows."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
import torch

from video_bgm import media, windows
from video_bgm.config import GenerationParams, check_window_options
from video_bgm.synthetic import write_test_video
from video_bgm.windows import Window, plan


def second_colour(t: float):
    """A different colour every second, so every window's frames (and conditioning) differ."""
    k = int(t)
    return ((k * 53) % 256, (k * 97 + 40) % 256, (k * 151 + 90) % 256)


@pytest.fixture(scope="module")
def clip_9s(tmp_path_factory):
    path = tmp_path_factory.mktemp("windows") / "clip_9s.mp4"
    return write_test_video(path, duration=9.0, fps=4, size=(32, 32), color_fn=second_colour)


def test_plan_covers_the_piece_once_with_overlapping_prompts():
    ws = plan(475, 150, 50)
    assert ws[0] == Window(0, 0, 0, 150)
    assert ws[1] == Window(1, 100, 150, 250)
    assert ws[-1].end == 475 and ws[-1].end - ws[-1].start == 150  # the last one reaches back a whole window
    assert sum(w.new_frames for w in ws) == 475
    for a, b in zip(ws, ws[1:]):
        assert b.new == a.end and b.prompt_frames >= 50 and b.start >= a.start
    assert plan(120, 150, 50) == [Window(0, 0, 0, 120)]  # shorter than a window: one plain window
    with pytest.raises(ValueError):
        plan(475, 150, 150)


def test_options_are_checked():
    with pytest.raises(ValueError, match="overlap"):
        check_window_options(30, 30)
    with pytest.raises(ValueError, match="window: 45 s is longer"):
        check_window_options(45, 10, max_seconds=40.9)


def record_windows(model, monkeypatch):
    """Record what each window's generate_codes call got (condition, prompt) and gave."""
    calls = []
    original = model.musicgen.generate_codes

    def recording(condition, mask, num_frames, **kwargs):
        codes = original(condition, mask, num_frames, **kwargs)
        prompt = kwargs.get("prompt")
        calls.append((condition.clone(), None if prompt is None else prompt.clone(), codes.clone()))
        return codes

    monkeypatch.setattr(model.musicgen, "generate_codes", recording)
    return calls


def expected_condition(model, video, start, seconds):
    frames, _ = media.sample_frames(video, model.config.fps, start=start, duration=seconds)
    features = model.frame_encoder.encode(frames)[None]
    return model.condition(features, torch.ones(features.shape[:2], dtype=torch.bool))[0]


def check_windows_saw_their_own_video(model, video, calls, ws, rate):
    expected = [expected_condition(model, video, w.start / rate, (w.end - w.start) / rate) for w in ws]
    assert len(calls) == len(ws)
    for k, (condition, _, _) in enumerate(calls):
        torch.testing.assert_close(condition, expected[k])
        for j in range(len(ws)):  # and not any other window's
            if j != k and expected[j].shape == condition.shape:
                assert not torch.allclose(condition, expected[j])


def check_prompts_continue_the_music(calls, ws):
    made = torch.cat([codes for _, _, codes in calls], dim=2)  # every window's new frames, in order
    for (_, prompt, _), w in zip(calls, ws):
        if w.index == 0:
            assert prompt is None
        else:
            assert torch.equal(prompt, made[..., w.start : w.new])


def seam_samples(ws, rate, per_frame, overlap_f):
    """Sample index of each crossfade's middle (see windows.generate)."""
    context = min(round(windows.DECODE_CONTEXT * rate), overlap_f)
    fade = max(1, min(context // 4, ws[0].end - overlap_f))
    margin = context // 4
    return [(w.new - margin) * per_frame - fade * per_frame // 2 for w in ws[1:]], fade * per_frame


def check_seams(audio, seams, fade_samples, sample_rate):
    """No gap: the level around each seam is like the rest of the piece's. No click: no
    sample-to-sample jump in a seam's neighbourhood exceeds the largest jump away from seams."""
    mono = audio.mean(axis=0)
    jumps = np.abs(np.diff(mono))
    near = np.zeros(len(jumps), dtype=bool)
    half = fade_samples // 2 + sample_rate // 50
    for s in seams:
        near[max(0, s - half) : s + half] = True
    elsewhere = jumps[~near].max()
    block = sample_rate // 50  # 20 ms
    levels = np.sqrt(np.mean(mono[: len(mono) // block * block].reshape(-1, block) ** 2, axis=1))
    typical = np.median(levels)
    for s in seams:
        assert jumps[max(0, s - half) : s + half].max() <= elsewhere, f"click at sample {s}"
        around = mono[max(0, s - half) : s + half]
        for lo in range(0, len(around) - block + 1, block):
            assert np.sqrt(np.mean(around[lo : lo + block] ** 2)) > 0.2 * typical, f"gap at sample {s}"


def test_windows_follow_their_video_and_continue_each_other(tiny_model, clip_9s, monkeypatch):
    model, mg = tiny_model, tiny_model.musicgen
    calls = record_windows(model, monkeypatch)
    info = media.probe_video(clip_9s)
    events = []
    num_frames = round(4.4 * mg.frame_rate)
    chunks = windows.generate(mg, windows.video_condition(model, clip_9s, info), num_frames, window=2.0,
                              overlap=0.8, generator=torch.Generator().manual_seed(0),
                              progress=lambda *e: events.append(e), guidance_scale=3.0, top_k=50)
    audio = windows.render(chunks, mg.audio_channels, round(4.4 * mg.sample_rate))
    assert audio.shape == (1, round(4.4 * mg.sample_rate))

    ws = plan(num_frames, 100, 40)
    assert len(ws) == 3
    check_windows_saw_their_own_video(model, clip_9s, calls, ws, mg.frame_rate)
    check_prompts_continue_the_music(calls, ws)
    seams, fade = seam_samples(ws, mg.frame_rate, 640, 40)
    check_seams(audio, seams, fade, mg.sample_rate)

    # progress: every window announced, generation steps counted over the whole piece, monotonic
    assert [e[1:] for e in events if e[0] == "window"] == [(k, 3) for k in range(1, 4)]
    steps = [e[1:] for e in events if e[0] == "generating"]
    total = num_frames + 3 * (mg._delays - 1)
    assert steps[-1] == (total, total) and all(a[0] < b[0] for a, b in zip(steps, steps[1:]))


def test_crossfaded_seams_match_one_long_decode(tiny_model):
    """The seams' samples are what decoding the whole code stream at once gives, up to the small
    difference of EnCodec's warm-up: the crossfade joins two decodes of the same codes."""
    mg = tiny_model.musicgen
    cond = torch.zeros(1, 1, mg.decoder_dim)
    mask = torch.ones(1, 1, dtype=torch.bool)
    made = []
    original = mg.generate_codes

    def keep(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]

    mg.generate_codes = keep
    try:
        chunks = windows.generate(mg, lambda start, seconds: (cond, mask, None), 250, window=2.0, overlap=1.0,
                                  generator=torch.Generator().manual_seed(1), top_k=50)
        audio = windows.render(chunks, 1, 250 * 640)
    finally:
        del mg.generate_codes
    whole = mg.decode(torch.cat(made, dim=2))[0].numpy()
    level = np.sqrt(np.mean(whole ** 2))
    assert np.sqrt(np.mean((audio - whole) ** 2)) < 0.1 * level


@pytest.mark.slow
def test_95_second_video_gets_95_seconds_of_music_window_by_window(tiny_model, tmp_path, monkeypatch):
    """The default windows (30 s, 10 s overlap) through VideoBGM.generate."""
    video = write_test_video(tmp_path / "long.mp4", duration=95.0, fps=2, size=(32, 32), color_fn=second_colour,
                             audio=False)
    model, mg = tiny_model, tiny_model.musicgen
    calls = record_windows(model, monkeypatch)
    events = []
    result = model.generate(video, GenerationParams(seed=3, top_k=50), progress=lambda *e: events.append(e))
    assert result.duration == pytest.approx(95.0) and result.audio.shape == (1, 95 * mg.sample_rate)

    ws = plan(95 * 50, 1500, 500)
    assert len(ws) == 5 and [e[1:] for e in events if e[0] == "window"][-1] == (5, 5)
    check_windows_saw_their_own_video(model, video, calls, ws, mg.frame_rate)
    check_prompts_continue_the_music(calls, ws)
    seams, fade = seam_samples(ws, mg.frame_rate, 640, 500)
    check_seams(result.audio, seams, fade, mg.sample_rate)


def live_tensor_bytes() -> int:
    gc.collect()
    total = 0
    with warnings.catch_warnings():  # isinstance on deprecated torch module attributes warns
        warnings.simplefilter("ignore")
        for obj in gc.get_objects():
            try:
                if isinstance(obj, torch.Tensor):
                    total += obj.untyped_storage().nbytes()
            except Exception:  # objects that disappear or refuse isinstance mid-scan
                pass
    return total


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.slow
def test_memory_stays_flat_over_100_windows(tiny_model, clip_9s):
    """Short windows so that 100 of them run quickly; the chunks are consumed and dropped as a
    streaming writer would. Tensor memory and the process's RSS must not grow with the window count."""
    mg = tiny_model.musicgen
    info = media.probe_video(clip_9s)
    tensors, rss = [], []

    def progress(stage, done, total):
        if stage == "window":
            rss.append(rss_bytes())
            if done % 10 == 0:  # a scan of every live object takes a while
                tensors.append(live_tensor_bytes())

    num_frames = 15 + 99 * 5  # window 0.3 s, overlap 0.2 s: 0.1 s new per window
    samples = 0
    for chunk in windows.generate(mg, windows.video_condition(tiny_model, clip_9s, info), num_frames,
                                  window=0.3, overlap=0.2, generator=torch.Generator().manual_seed(0),
                                  progress=progress, top_k=50):
        samples += chunk.shape[1]
    assert len(rss) == 100 and samples == num_frames * 640
    # Everything a window leaves behind is its codes and one fade (a few KB); keeping every
    # window's codes or audio would add ~13 KB per window, over 1 MB over the run.
    assert max(tensors[1:]) - tensors[0] < 64 * 1024, tensors
    assert max(rss[50:]) - max(rss[5:50]) < 32 * 2**20, rss
