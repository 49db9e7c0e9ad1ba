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

Memory: only the output chunks (yielded as soon as they are final), the last window's codes (the
next prompt) and one held-back fade region are kept between windows; frames are sampled per window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from . import frame_window, mapped_pages, media
from .config import DEFAULT_OVERLAP, DEFAULT_WINDOW, check_window_options
from .loudness import raised_cosine
from .musicgen import DECODE_CONTEXT


# (stage, done, total), as the pipeline reports: "window" (k, n) when window k of n starts,
# "generating" (steps done, steps in the whole piece).
Progress = Callable[[str, int, int], None]
# (start s, seconds) -> decoder-space conditioning [1, N, D] and mask [1, N] for that span of the video
ConditionFn = Callable[[float, float], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Window:
    """One window, in code frames: its prompt is [start, new), it samples [new, end)."""

    index: int
    start: int
    new: int
    end: int

    @property
    def prompt_frames(self) -> int:
        return self.new - self.start

    @property
    def new_frames(self) -> int:
        return self.end - self.new


def plan(total_frames: int, window_frames: int, overlap_frames: int) -> list[Window]:
    """The windows covering ``total_frames`` code frames (see the module docstring)."""
    if total_frames <= 0:
        raise ValueError(f"nothing to generate ({total_frames} frames)")
    if not 0 < overlap_frames < window_frames:
        raise ValueError(f"need 0 < overlap < window, got {overlap_frames} and {window_frames} frames")
    windows = [Window(0, 0, 0, min(window_frames, total_frames))]
    while windows[-1].end < total_frames:
        new = windows[-1].end
        end = min(new + window_frames - overlap_frames, total_frames)
        windows.append(Window(len(windows), max(0, end - window_frames), new, end))
    return windows


def generate(musicgen, condition_for: ConditionFn, num_frames: int, window: float = DEFAULT_WINDOW,
             overlap: float = DEFAULT_OVERLAP, generator: torch.Generator | None = None,
             progress: Progress | None = None, **sampling) -> Iterator[np.ndarray]:
    """Music of ``num_frames`` code frames, as float32 chunks [C, n] in order, each final when yielded.

    ``condition_for(start, seconds)`` gives each window's conditioning; ``sampling`` goes to
    ``MusicGen.generate_codes`` (guidance_scale, temperature, top_k, top_p). The chunks add up to
    ``num_frames * sample_rate / frame_rate`` samples.
    """
    rate = musicgen.frame_rate
    check_window_options(window, overlap, musicgen.max_frames / rate)
    window_f, overlap_f = round(window * rate), max(1, round(overlap * rate))
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
        condition, mask = condition_for(w.start / rate, (w.end - w.start) / rate)
        prompt = None if w.prompt_frames == 0 else recent[..., w.start - recent_start : w.new - recent_start]
        new = musicgen.generate_codes(
            condition, mask, w.new_frames, generator=generator, prompt=prompt,
            progress=lambda done, _total, before=steps_before: report("generating", before + done, total_steps),
            **sampling)  # (1, K, new_frames)
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

    def condition_for(start: float, seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
        nonlocal calls
        calls += 1
        last = max(0.0, info.duration - 1.0 / model.config.fps)
        begin = min(start, last)
        span = min(start + seconds, info.duration) - begin
        if calls == 1:
            report("frames", 0, 1)
        frames, _ = media.sample_frames(video, frame_window.sampling_rate(model.config, span), info=info,
                                        start=begin, duration=span)
        if calls == 1:
            report("frames", 1, 1)
            report("encoding", 0, 1)
        features, frame_mask = frame_window.fit(model.frame_encoder.encode(frames), model.config)  # (T, F), (T,)
        # The frame encoder runs once per window: its weights' pages need not stay resident while
        # MusicGen samples (the next window reads them back from the page cache).
        mapped_pages.release_module(model.frame_encoder)
        condition = model.condition(features[None], frame_mask[None], prompt)
        if calls == 1:
            report("encoding", 1, 1)
        return condition

    return condition_for


def frames_for(seconds: float, frame_rate: float) -> int:
    """Code frames covering ``seconds`` of music."""
    return math.ceil(seconds * frame_rate - 1e-9)
