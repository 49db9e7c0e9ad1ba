"""Exact clips of a source video: [start, end) re-encoded, so the clip starts on the frame shown at
``start`` and its sound on the sample at ``start``.

Copying the stream would be faster but starts on the keyframe before ``start`` (up to several
seconds early, or a clip whose first frames do not decode); re-encoding is exact. The frame shown
at ``start`` becomes the clip's first frame at time 0, every later frame keeps its distance from
``start``, and the sound is the source's samples from ``start`` on (decode_audio is sample-exact).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .. import media
from ..errors import MediaError
from ..outputs import atomic_outputs
from .settings import DEFAULT_CRF, DEFAULT_PRESET

_AUDIO_BITRATE = 192_000
_TIME_BASE = Fraction(1, 90_000)  # MPEG's clock: any source frame time is within 11 us of a tick


def cut_clip(source: str | os.PathLike, start: float, end: float, target: str | os.PathLike,
             info: media.VideoInfo | None = None, crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET) -> Path:
    """Write [start, end) of ``source`` to ``target`` (.mp4, H.264 + AAC), atomically."""
    source = os.fspath(source)
    info = info or media.probe_video(source)
    audio = None
    if info.has_audio:
        try:
            with av.open(source) as container:
                rate = container.streams.audio[0].codec_context.sample_rate or 48000
            audio = media.decode_audio(source, rate, 2, start=start, duration=end - start)
        except MediaError:
            audio = None  # a broken soundtrack: the clip keeps its picture, the music stage reports it
    with atomic_outputs(target) as (temp,):
        _write(source, info, start, end, temp, audio, rate if audio is not None else 0, crf, preset)
    return Path(target)


def _write(source: str, info: media.VideoInfo, start: float, end: float, out_path: Path,
           audio: np.ndarray | None, rate: int, crf: int, preset: str) -> None:
    with av.open(source) as src, av.open(str(out_path), "w", format="mp4") as out:
        stream_in = src.streams.video[0]
        stream_in.thread_type = "AUTO"
        origin = float((stream_in.start_time or 0) * stream_in.time_base)
        even = info.width % 2 == 0 and info.height % 2 == 0
        video = out.add_stream("libx264", rate=Fraction(info.fps).limit_denominator(1001),
                               options={"crf": str(crf), "preset": preset,
                                        "x264-params": "log=0"})  # no statistics on stderr per clip
        video.pix_fmt = "yuv420p" if even else "yuv444p"  # 4:2:0 needs even sizes
        video.time_base = video.codec_context.time_base = _TIME_BASE
        if info.rotation:
            video.set_display_rotation(-info.rotation)  # PyAV counts counter-clockwise
        sound = None
        if audio is not None:
            sound = out.add_stream("aac", rate=rate, layout="stereo")
            sound.bit_rate = _AUDIO_BITRATE
        sized = False
        try:
            if start > 0:
                src.seek(int((start + origin) / stream_in.time_base), stream=stream_in, backward=True)
            for frame, shown in _frames_in(src.decode(stream_in), origin, start, end):
                if not sized:  # stored (not displayed) size: the rotation is metadata
                    video.width, video.height, sized = frame.width, frame.height, True
                picture = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
                picture.pts = round((shown - start) / _TIME_BASE)
                picture.time_base = _TIME_BASE
                out.mux(video.encode(picture))
        except av.error.FFmpegError:
            raise MediaError(source, f"cannot decode video frames for the clip at {start:.3f} s") from None
        if not sized:
            raise MediaError(source, f"no frames between {start:.3f} s and {end:.3f} s")
        out.mux(video.encode(None))
        if sound is not None:
            for lo in range(0, audio.shape[1], 16384):
                part = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, lo:lo + 16384]), format="fltp",
                                                  layout="stereo")
                part.sample_rate, part.pts, part.time_base = rate, lo, Fraction(1, rate)
                out.mux(sound.encode(part))
            out.mux(sound.encode(None))


def _frames_in(frames, origin: float, start: float, end: float):
    """(frame, display time) for the frames shown during [start, end): the one shown at ``start``
    (at ``start``), then every frame that starts before ``end``."""
    previous = None
    for frame in frames:
        if frame.time is None:
            continue
        t = frame.time - origin
        if t >= end - media._TIME_TOLERANCE:
            break
        if t <= start + media._TIME_TOLERANCE:
            previous = frame  # the latest frame starting at or before start is the one shown then
            continue
        if previous is not None:
            yield previous, start
            previous = None
        yield frame, t
    if previous is not None:
        yield previous, start
