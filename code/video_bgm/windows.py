"""Music of any length: MusicGen window by window, each window continuing the music before it.

MusicGen was trained on 30 s windows and its decoder's position table ends at about 41 s, so a
longer piece is generated in windows of ``window`` seconds (default 30) that overlap by
``overlap`` seconds (default 10)::

    window 1   [0, W)                      conditioned on the video's [0, W), all W s sampled
    window 2   [W - O, 2W - O)             prompt: the codes of [W - O, W) already made; samples W - O s
    window k   [t_k, t_k + W), t_k = t_{k-1} + W - O
    last       ends at the music's end and reaches back W s (a longer prompt, no extra sampling)

Each window is conditioned on the frames of its own span of the video, and its first ``overlap``
seconds are the last codes already generated, fed to the decoder as an audio-code prompt
(``MusicGen.generate_codes(prompt=...)``): MusicGen continues that music token by token, so the
piece stays one piece. The prompt costs one parallel forward pass, not sampling steps: every
second of music is sampled exactly once.

Seams. The code stream is continuous, but EnCodec decodes window by window (memory stays flat
however long the video): each window decodes its new codes plus ``DECODE_CONTEXT`` seconds of
the codes before them (EnCodec's convolutions and LSTM warm up on those). Both decodes of that
context are decodes of the *same* codes, so they agree closely (they are correlated: the gains
sum to 1, not the powers); the seam is a raised-cosine crossfade between them, placed away from both decodes' edges (the previous
window's last ``margin`` and the new window's first ``warm-up`` are discarded)::

    previous decode  ....xxxxxxxxxxxxxxxxxx\\\\\\|---margin---|                (|: its end = this window's new codes)
    this decode                 |--warm-up--/////xxxxxxxxxxxxxxxxxx....
                                            fade

Scene-aware windows (``cuts``, ``--follow-cuts``): the new part of each window is chosen from the
video's cuts instead: a window ends at the first cut at least ``min_scene`` seconds after it began,
a scene longer than ``window - overlap`` is split into equal windows no longer than that, and each
window is conditioned on the frames of its own new part (its scene or scenes), not of its prompt,
which belongs to the scene before. The prompt is still the last ``overlap`` seconds already made, so
the music carries across the cut while what conditions it changes there::

    cuts          |           |       |                    |
    windows   [ 1 scene 1  )[ 2      )[ 3 scene 3 ...    )[ 4 ...
    prompt of 3          <-- overlap --|

Memory: only the output chunks (yielded as soon as they are final), the last window's codes (the
next prompt) and one held-back fade region are kept between windows; frames are sampled per window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from . import frame_window, mapped_pages, media, motion
from .config import DEFAULT_MIN_SCENE, DEFAULT_OVERLAP, DEFAULT_WINDOW, check_window_options
from .loudness import raised_cosine
from .musicgen import DECODE_CONTEXT
from .time_band import TimeBand


# (stage, done, total), as the pipeline reports: "window" (k, n) when window k of n starts,
# "generating" (steps done, steps in the whole piece).
Progress = Callable[[str, int, int], None]
# (start s, seconds) -> decoder-space conditioning [1, N, D], mask [1, N] and time band (token times from
# ``start``; None for global conditioning) for that span of the video
ConditionFn = Callable[[float, float], tuple[torch.Tensor, torch.Tensor, TimeBand | None]]


@dataclass(frozen=True)
class Window:
    """One window, in code frames: its prompt is [start, new), it samples [new, end), and it is
    conditioned on the video's [condition_start, condition_end) (default: [start, end))."""

    index: int
    start: int
    new: int
    end: int
    condition_start: int | None = None
    condition_end: int | None = None

    @property
    def condition_span(self) -> tuple[int, int]:
        """The frames of the video this window's conditioning covers."""
        return (self.start if self.condition_start is None else self.condition_start,
                self.end if self.condition_end is None else self.condition_end)

    @property
    def prompt_frames(self) -> int:
        return self.new - self.start

    @property
    def new_frames(self) -> int:
        return self.end - self.new


def _check_plan(total_frames: int, window_frames: int, overlap_frames: int) -> None:
    if total_frames <= 0:
        raise ValueError(f"nothing to generate ({total_frames} frames)")
    if not 0 < overlap_frames < window_frames:
        raise ValueError(f"need 0 < overlap < window, got {overlap_frames} and {window_frames} frames")


def plan(total_frames: int, window_frames: int, overlap_frames: int) -> list[Window]:
    """The windows covering ``total_frames`` code frames (see the module docstring)."""
    _check_plan(total_frames, window_frames, overlap_frames)
    windows = [Window(0, 0, 0, min(window_frames, total_frames))]
    while windows[-1].end < total_frames:
        new = windows[-1].end
        end = min(new + window_frames - overlap_frames, total_frames)
        windows.append(Window(len(windows), max(0, end - window_frames), new, end))
    return windows


def plan_scenes(total_frames: int, window_frames: int, overlap_frames: int, cut_frames,
                min_frames: int) -> list[Window]:
    """Windows whose new parts start at the cuts (see the module docstring); each is conditioned on
    its new part. ``cut_frames``: the cuts in code frames; ``min_frames``: the shortest window a cut
    may end."""
    _check_plan(total_frames, window_frames, overlap_frames)
    bounds = [0]
    for cut in sorted(set(cut_frames)):
        if bounds[-1] + min_frames <= cut < total_frames:
            bounds.append(cut)
    bounds.append(total_frames)
    # Every window after the first gets a prompt of min(overlap, its start) >= the decode context the
    # seams need: a cut ends a window only min_frames (>= DECODE_CONTEXT) in, and a split first scene
    # keeps at least the overlap for its first window.
    limit = window_frames - overlap_frames  # the most a window with a prompt can sample
    news = []
    for a, b in zip(bounds, bounds[1:]):
        if a == 0 and b > window_frames:
            # The first window has no prompt: it samples a whole window (less if that would leave the
            # windows after it in this scene shorter than min_frames), the rest of the scene splits evenly.
            parts = math.ceil((b - window_frames) / limit)
            news.append(0)
            a = min(window_frames, b - parts * min(min_frames, limit))
        else:
            parts = 1 if a == 0 else math.ceil((b - a) / limit)
        news.extend(a + round(j * (b - a) / parts) for j in range(parts))
    news.append(total_frames)
    return [Window(k, max(0, a - overlap_frames), a, b, a, b) for k, (a, b) in enumerate(zip(news, news[1:]))]


def generate(musicgen, condition_for: ConditionFn, num_frames: int, window: float = DEFAULT_WINDOW,
             overlap: float = DEFAULT_OVERLAP, generator: torch.Generator | None = None,
             progress: Progress | None = None, cuts=None, min_scene: float = DEFAULT_MIN_SCENE,
             rerank_cuts=None, candidates: int = 1, on_rerank=None, **sampling) -> Iterator[np.ndarray]:
    """Music of ``num_frames`` code frames, as float32 chunks [C, n] in order, each final when yielded.

    ``condition_for(start, seconds)`` gives each window's conditioning; ``sampling`` goes to
    ``MusicGen.generate_codes`` (guidance_scale, temperature, top_k, top_p). The chunks add up to
    ``num_frames * sample_rate / frame_rate`` samples. ``cuts`` (s): scene-aware windows
    (``plan_scenes``, windows at least ``min_scene`` s). ``candidates`` > 1: a window whose new music
    holds one of ``rerank_cuts`` (s) is sampled that many times as rows of one batch and the one whose
    beats best hit those cuts is kept (``cutsync``); ``on_rerank(cutsync.Rerank)`` hears of each.
    """
    rate = musicgen.frame_rate
    check_window_options(window, overlap, musicgen.max_frames / rate)
    window_f, overlap_f = round(window * rate), max(1, round(overlap * rate))
    if cuts is not None:
        check_min_scene(min_scene)
        windows = plan_scenes(num_frames, window_f, overlap_f, [round(c * rate) for c in cuts],
                              round(min_scene * rate))
    else:
        windows = plan(num_frames, window_f, overlap_f)
    report = progress or (lambda stage, done, total: None)
    step_counts = [w.new_frames + musicgen._delays - 1 for w in windows]
    total_steps, steps_before = sum(step_counts), 0
    per_frame = round(musicgen.sample_rate / rate)  # samples per code frame (640)
    context = min(round(DECODE_CONTEXT * rate), overlap_f)
    # frames crossfaded; a window's new frames must hold one whole fade
    fade = max(1, min(context // 4, window_f - overlap_f))
    margin = context // 4  # frames dropped at the end of a window's decode
    warmup = context - fade - margin  # frames dropped at the start of the next window's decode

    recent = None  # the codes of the last window: [1, K, frames] from frame `recent_start`
    recent_start = 0
    held = None  # the previous decode's fade region: [C, fade * per_frame]
    for w, steps in zip(windows, step_counts):
        report("window", w.index + 1, len(windows))
        lo, hi = w.condition_span
        condition, mask, band = condition_for(lo / rate, (hi - lo) / rate)
        if band is not None:  # token times from the window's first decoder position (its prompt's start)
            band = band.shifted((lo - w.start) / rate)
        prompt = None if w.prompt_frames == 0 else recent[..., w.start - recent_start : w.new - recent_start]
        here = [c for c in (rerank_cuts or ()) if w.new <= c * rate < w.end] if candidates > 1 else []
        rows = candidates if here else 1
        new = musicgen.generate_codes(
            condition.expand(rows, *condition.shape[1:]), mask.expand(rows, *mask.shape[1:]), w.new_frames,
            generator=generator, prompt=None if prompt is None else prompt.expand(rows, *prompt.shape[1:]),
            progress=lambda done, _total, before=steps_before: report("generating", before + done, total_steps),
            band=band, **sampling)  # (rows, K, new_frames)
        if rows > 1:
            new = _rerank(musicgen, w, prompt, new, here, on_rerank)
        steps_before += steps
        # The decoder samples once per window: its weights' pages need not stay resident while
        # EnCodec decodes, when memory peaks (the next window reads them back from the page cache).
        mapped_pages.release_module(musicgen.model.decoder)
        codes = new if prompt is None else torch.cat([prompt, new], dim=2)
        last = w.index == len(windows) - 1

        # Decode the new codes with `context` frames before them (none for the first window).
        lead = 0 if w.index == 0 else context
        if last:  # earlier windows' decoding is part of "generating"
            report("decoding", 0, 1)
        audio = musicgen.decode(codes[..., codes.shape[-1] - w.new_frames - lead:])[0].float().cpu().numpy()  # (C, S)
        if last:
            report("decoding", 1, 1)
        if held is not None:
            ramp = raised_cosine(fade * per_frame)
            lo = warmup * per_frame
            overlap_part = audio[:, lo : lo + fade * per_frame]
            yield (held * (1 - ramp) + overlap_part * ramp).astype(np.float32)
            audio = audio[:, lo + fade * per_frame :]  # continues at frame w.new - margin
        if last:
            yield np.ascontiguousarray(audio, dtype=np.float32)
        else:
            keep = audio.shape[1] - (margin + fade) * per_frame
            yield np.ascontiguousarray(audio[:, :keep], dtype=np.float32)
            held = audio[:, keep : keep + fade * per_frame].copy()
        recent, recent_start = codes, w.start
        del audio, codes, new, condition, mask  # nothing of this window outlives it but `recent` and `held`


def _rerank(musicgen, w: Window, prompt, new: torch.Tensor, cuts, on_rerank) -> torch.Tensor:
    """The candidate row of ``new`` [R, K, F] whose beats best hit ``cuts`` (s), as [1, K, F]."""
    from . import cutsync

    rate = musicgen.frame_rate
    codes = new if prompt is None else torch.cat([prompt.expand(new.shape[0], *prompt.shape[1:]), new], dim=2)
    context = round(cutsync.SCORE_CONTEXT * rate)  # score on the music around the cuts only
    a = max(w.start, round(min(cuts) * rate) - context)
    b = min(w.end, round(max(cuts) * rate) + context)
    audio = musicgen.decode(codes[..., a - w.start : b - w.start]).float().cpu().numpy()  # (R, C, S)
    kept, scores = cutsync.choose(audio, musicgen.sample_rate, a / rate, cuts)
    if on_rerank is not None:
        on_rerank(cutsync.Rerank(w.index, tuple(cuts), tuple(scores), kept))
    return new[kept : kept + 1]


def check_min_scene(min_scene: float) -> None:
    """ValueError naming the option: a window ended by a cut must hold EnCodec's decode context."""
    if not min_scene >= DECODE_CONTEXT:
        raise ValueError(f"cut-min-seconds: must be at least {DECODE_CONTEXT:g} s (the decode context a window "
                         f"hands to the next), got {min_scene:g}")


def render(chunks: Iterator[np.ndarray], channels: int, samples: int) -> np.ndarray:
    """Chunks [C, n] written into one preallocated float32 [C, samples] (trimmed or zero-padded)."""
    out = np.zeros((channels, samples), dtype=np.float32)
    at = 0
    for chunk in chunks:
        n = min(chunk.shape[1], samples - at)
        if n > 0:
            out[:, at : at + n] = chunk[:, :n]
        at += chunk.shape[1]
    return out


def video_condition(model, video, info: media.VideoInfo, prompt: str | None = None,
                    progress: Progress | None = None) -> ConditionFn:
    """``condition_for(start, seconds)`` for ``model`` (a VideoBGM): the frames of that span of the
    video (sampled only for it, at the model's rate), encoded and turned into conditioning.

    Music that runs past the video's end is conditioned on what the video shows there: its last
    frame. ``progress`` gets the stages "frames" and "encoding" of the first window (later
    windows' are part of "generating").
    """
    report = progress or (lambda stage, done, total: None)
    calls = 0

    def condition_for(start: float, seconds: float) -> tuple[torch.Tensor, torch.Tensor, TimeBand | None]:
        nonlocal calls
        calls += 1
        last = max(0.0, info.duration - 1.0 / model.config.fps)
        begin = min(start, last)
        span = min(start + seconds, info.duration) - begin
        if calls == 1:
            report("frames", 0, 1)
        rate = frame_window.sampling_rate(model.config, span)
        if model.config.motion:
            frames, times, channels = media.sample_frames_and_motion(video, rate, info=info, start=begin, duration=span)
        else:
            frames, times = media.sample_frames(video, rate, info=info, start=begin, duration=span)
        if calls == 1:
            report("frames", 1, 1)
            report("encoding", 0, 1)
        features = model.frame_encoder.encode(frames)  # (T, F)
        if model.config.motion:
            features = motion.append(features, channels)
        features, frame_mask = frame_window.fit(features, model.config)  # (P, F), (P,)
        # The frame encoder runs once per window: its weights' pages need not stay resident while
        # MusicGen samples (the next window reads them back from the page cache).
        mapped_pages.release_module(model.frame_encoder)
        condition, mask = model.condition(features[None], frame_mask[None], prompt)
        if calls == 1:
            report("encoding", 1, 1)
        return condition, mask, model.time_band(times - start, condition.shape[1])

    return condition_for


def frames_for(seconds: float, frame_rate: float) -> int:
    """Code frames covering ``seconds`` of music."""
    return math.ceil(seconds * frame_rate - 1e-9)
