"""Media I/O: probe a video, sample its frames, decode audio, write WAV, put music into a video.

PyAV (FFmpeg) does all of it, on every platform (decord, the design card's frame reader, has no wheels
for macOS arm64 or Linux aarch64 and was measured no faster: bench/frames.py). Every problem with an
input file is raised as :class:`~video_bgm.errors.MediaError` (``"<path>: <problem>"``), never as a raw
PyAV exception.

Conventions: times are float seconds from the start of the video stream; frames are uint8
RGB ``[T, H, W, 3]`` the way a player DISPLAYS them (rotation metadata applied); audio is
float32 ``[channels, samples]`` in [-1, 1].
"""

from __future__ import annotations

import heapq
import io
import os
import re
import wave
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from .errors import MediaError, OutputError
from .formats import OUTPUT_FORMATS, VIDEO_EXTENSIONS  # noqa: F401 (media.VIDEO_EXTENSIONS is the public name)
from .motion import MotionMeter
from .outputs import atomic_outputs, check_outputs

_LAYOUTS = {1: "mono", 2: "stereo"}
# A sampling time this close before a frame's start counts as that frame: k/fps and the k-th frame's
# timestamp (a multiple of the stream's time base) can differ by a little in a long video.
_TIME_TOLERANCE = 1e-3
# Sampling times may run this far past the last decodable frame's end before the file counts as
# truncated (a file cut short can still have complete metadata and a decodable first frame).
_TRUNCATION_SLACK = 1.0
# A header's duration this far from what the video data spans (s, or this fraction of it) is reported.
_CLAIM_TOLERANCE, _CLAIM_TOLERANCE_FRACTION = 1.0, 0.02


@dataclass(frozen=True)
class VideoInfo:
    path: str
    duration: float  # seconds the video stream's packets span: what the file holds, whatever its header says
    fps: float  # average frame rate
    num_frames: int  # frames in the stream (a packet count)
    width: int  # as displayed, i.e. after rotation (a portrait phone video has width < height)
    height: int
    rotation: int  # clockwise degrees to rotate the stored frames by for display: 0, 90, 180 or 270
    has_audio: bool
    video_codec: str  # FFmpeg codec name, e.g. "h264", "vp9"
    claimed_duration: float | None = None  # what the container's header says (None: it says nothing)

    def duration_note(self) -> str:
        """One line when the header's duration is not what the file holds, else ""."""
        claimed = self.claimed_duration
        if claimed is None or abs(claimed - self.duration) <= max(_CLAIM_TOLERANCE,
                                                                 _CLAIM_TOLERANCE_FRACTION * self.duration):
            return ""
        return (f"{Path(self.path).name}: its header says {_seconds(claimed)} but its video data lasts "
                f"{self.duration:.2f} s; {self.duration:.2f} s used")


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 3600 else f"{value:.0f} s ({value / 3600:.1f} h)"


# ---------------------------------------------------------------------------------------------
# Probing


def probe_video(path) -> VideoInfo:
    """Read a video's properties, decoding its first frame to prove the file is usable.

    The duration is what the video's packets span (read to the end without decoding: 0.2 s for
    5 minutes of 25 fps video), never just what the header claims: a header can say 99 hours for
    a few seconds of frames, and everything sized by the duration (frames, music, padding) would
    follow it. ``claimed_duration`` keeps the header's word; ``duration_note()`` reports a mismatch.

    Raises MediaError for a missing file, a folder, an empty or non-media file, a still image,
    a file without a video stream, a video without frames, and one whose first frame cannot
    be decoded.
    """
    path = _check_file(path)
    with _open_media(path) as container:
        if _is_still_image(container):
            raise MediaError(path, "is a still image, not a video")
        stream = _video_stream(container, path)
        first = _first_frame(container, stream, path)
        claimed = _claimed_duration(container, stream)
        fps = _frame_rate(stream)
        has_audio = bool(container.streams.audio)
        codec = stream.codec_context.name
    spanned, counted = _scan_packets(path)
    duration = spanned if counted else (claimed or 0.0)
    if duration <= 0:
        raise MediaError(path, "video has zero duration")
    fps = fps or (counted / duration if counted else 0.0) or 25.0  # 25: FFmpeg's own last resort
    num_frames = counted or round(duration * fps)
    rotation = _rotation_cw(first)
    width, height = first.width, first.height
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(path=path, duration=duration, fps=fps, num_frames=max(1, num_frames), width=width,
                     height=height, rotation=rotation, has_audio=has_audio, video_codec=codec,
                     claimed_duration=claimed)


def _check_file(path) -> str:
    """``path`` as a str, if it names a non-empty regular file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MediaError(path, "file not found")
    if os.path.isdir(path):
        raise MediaError(path, "is a folder, not a media file")
    if os.path.getsize(path) == 0:
        raise MediaError(path, "file is empty")
    return path


def _open_media(path: str):
    """av.open for reading, with open failures turned into MediaError."""
    try:
        return av.open(path, metadata_errors="replace")
    except av.error.InvalidDataError:
        raise MediaError(path, "not a media file, or corrupt/truncated (unreadable format)") from None
    except av.error.EOFError:
        raise MediaError(path, "file ends before its media data (truncated?)") from None
    except av.error.FFmpegError as err:
        raise MediaError(path, f"cannot open as media: {_reason(err)}") from None
    except OSError as err:
        raise MediaError(path, f"cannot read file: {err.strerror or err}") from None


def _reason(err: Exception) -> str:
    """The short FFmpeg/OS message of an exception, without its file name or code."""
    return getattr(err, "strerror", None) or str(err).splitlines()[0]


def _is_still_image(container) -> bool:
    """FFmpeg reads PNG/JPEG/... files as one-frame videos; their demuxers are image2 or *_pipe."""
    names = container.format.name.split(",")
    return "image2" in names or any(name.endswith("_pipe") for name in names)


def _video_stream(container, path: str):
    """The first real video stream (cover art in audio files is a 'video' stream too)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise MediaError(path, "not a video file (no video stream)")


def _first_frame(container, stream, path: str) -> av.VideoFrame:
    """The first decodable frame: proves the codec works and carries the display matrix."""
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError:
        raise MediaError(path, "cannot decode video (corrupt or truncated?)") from None
    raise MediaError(path, "video has zero duration (no frames)")


def _rotation_cw(frame: av.VideoFrame) -> int:
    """Clockwise display rotation in {0, 90, 180, 270}.

    FFmpeg (and so PyAV's ``VideoFrame.rotation``, read from the display matrix that FFmpeg 8
    attaches to every decoded frame) reports COUNTER-clockwise degrees in [-180, 180]; a
    portrait phone video typically reads -90, i.e. 90 clockwise. Flips in the matrix are ignored.
    """
    return (-round(frame.rotation / 90) * 90) % 360


def _frame_rate(stream) -> float:
    """Average frame rate, or 0.0 when the container does not say."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 0.0


def _claimed_duration(container, stream) -> float | None:
    """What the header says the video stream lasts (s), or None.

    MP4/MOV store the stream's duration; Matroska/WebM only a per-stream DURATION tag (written
    by FFmpeg and most muxers) and the segment's; live recordings (browser WebM) nothing.
    """
    if stream.duration:
        return float(stream.duration * stream.time_base)
    tag = _parse_hms(stream.metadata.get("DURATION") or stream.metadata.get("duration") or "")
    if tag:
        return tag
    return container.duration / av.time_base if container.duration else None


def _parse_hms(text: str) -> float:
    """'HH:MM:SS.fraction' -> seconds (0.0 if it does not parse)."""
    match = re.fullmatch(r"\s*(\d+):(\d\d):(\d\d(?:\.\d*)?)\s*", text)
    return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3]) if match else 0.0


def _scan_packets(path: str) -> tuple[float, int]:
    """(end of the last frame - start of the first, number of frames) by demuxing (no decoding)."""
    first, end, count = None, None, 0
    with _open_media(path) as container:
        stream = _video_stream(container, path)
        rate = _frame_rate(stream)
        frame_seconds = 1.0 / rate if rate else 0.0  # for packets without a duration (WebM's often lack it)
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.size == 0:
                    continue
                start = float(packet.pts * packet.time_base)
                stop = start + (float(packet.duration * packet.time_base) if packet.duration else frame_seconds)
                first = start if first is None else min(first, start)
                end = stop if end is None else max(end, stop)
                count += 1
        except av.error.FFmpegError:
            raise MediaError(path, "cannot read video packets (corrupt or truncated?)") from None
    if count == 0:
        return 0.0, 0
    return end - first, count


def find_videos(folder, recursive: bool = False) -> list[Path]:
    """Video files in ``folder`` (and its subfolders with ``recursive``), sorted; hidden ones (or in
    hidden folders) skipped."""
    folder = Path(folder)
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


# ---------------------------------------------------------------------------------------------
# Frames


def frame_times(duration: float, fps: float) -> np.ndarray:
    """Sampling times ``i / fps`` (s, float64) with ``t_i < duration``: at least [0.0] if duration > 0."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if not duration > 0:
        return np.zeros(0, dtype=np.float64)
    times = np.arange(int(np.ceil(duration * fps)) + 1, dtype=np.float64) / fps
    return times[times < duration]


def sample_frames(path, fps: float, info: VideoInfo | None = None, start: float = 0.0,
                  duration: float | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """Frames at ``start + i / fps`` within [start, start + duration) (default: to the end).

    Returns (uint8 [T, H, W, 3] RGB as displayed, float64 [T] times in s from the video start).
    Each time maps to the frame whose presentation interval contains it, using the file's real
    frame timestamps (so variable-frame-rate video is sampled right); times past the last
    frame's start get the last frame. Only the needed frames are decoded and kept.
    """
    frames, times, _ = _sample(path, fps, info, start, duration, motion=False)
    return frames, times


def sample_frames_and_motion(path, fps: float, info: VideoInfo | None = None, start: float = 0.0,
                             duration: float | None = None) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """``sample_frames`` and each sampled frame's motion channels, float32 [T, motion.CHANNELS]
    (``motion.MotionMeter``: every frame of the video at its own rate, through each frame's interval)."""
    return _sample(path, fps, info, start, duration, motion=True)


def _sample(path, fps: float, info: VideoInfo | None, start: float, duration: float | None, motion: bool):
    path = os.fspath(path)
    info = info or probe_video(path)
    times = _window_times(path, info, fps, start, duration)
    meter = MotionMeter(times, 1.0 / fps, info.width, info.height) if motion else None
    if len(times) == 0:
        frames = torch.empty((0, info.height, info.width, 3), dtype=torch.uint8)
    else:
        frames = _frames_pyav(path, info, times, meter)
    return frames, times, None if meter is None else meter.channels()


def _window_times(path: str, info: VideoInfo, fps: float, start: float, duration: float | None) -> np.ndarray:
    if start < 0 or (duration is not None and duration < 0):
        raise ValueError(f"start and duration must not be negative, got {start}, {duration}")
    if start >= info.duration:
        raise MediaError(path, f"start time {start:g} s is past the end of the video ({info.duration:.2f} s)")
    end = info.duration if duration is None else min(info.duration, start + duration)
    return start + frame_times(end - start, fps)


def frame_indices(frame_starts: np.ndarray, times: np.ndarray) -> np.ndarray:
    """For each time, the index of the last frame starting at or before it (clamped to [0, N-1])."""
    index = np.searchsorted(frame_starts, times + _TIME_TOLERANCE, side="right") - 1
    return np.clip(index, 0, len(frame_starts) - 1)


def _rotate(frames: torch.Tensor, clockwise: int) -> torch.Tensor:
    """[..., H, W, 3] rotated clockwise by 0/90/180/270 degrees (torch.rot90 turns counter-clockwise)."""
    if clockwise % 360 == 0:
        return frames
    return torch.rot90(frames, k=-(clockwise // 90), dims=(-3, -2))


def _frames_pyav(path: str, info: VideoInfo, times: np.ndarray, meter: MotionMeter | None = None) -> torch.Tensor:
    """Frames via PyAV: seek to the keyframe before the window, then decode forward.

    Only the frames that some time maps to are converted to RGB; memory is T frames. ``meter``
    gets every decoded frame in grey, until it has its last interval.
    """
    out = torch.empty((len(times), info.height, info.width, 3), dtype=torch.uint8)
    with _open_media(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        origin = float((stream.start_time or 0) * stream.time_base)
        try:
            if times[0] > 0:
                container.seek(int((times[0] + origin) / stream.time_base), stream=stream, backward=True)
            data_end = _fill_frames(out, container.decode(stream), times, origin, info.rotation, meter)
        except av.error.FFmpegError:
            raise MediaError(path, "cannot decode video frames (corrupt or truncated?)") from None
    _check_not_truncated(path, times, data_end)
    return out


def _fill_frames(out: torch.Tensor, frames, times: np.ndarray, origin: float, rotation: int,
                 meter: MotionMeter | None = None) -> float:
    """Write into ``out[j]`` the decoded frame whose interval contains ``times[j]`` (and hand every
    frame to ``meter`` in grey, decoding on until it is done).

    Returns inf when every time was covered by a decoded frame's interval; otherwise (the
    frames ran out) the end time of the last frame, whose copies fill the remaining times.
    """
    j, previous, rgb = 0, None, None

    def fill_from_previous():
        nonlocal j, rgb
        if rgb is None:  # convert each frame at most once, and only if some time needs it
            rgb = _rotate(torch.from_numpy(previous.to_ndarray(format="rgb24")), rotation)
        out[j] = rgb
        j += 1

    for frame in frames:
        if frame.time is None:
            continue
        start = frame.time - origin
        # `previous` covers [its start, this start): every pending time before `start` is its.
        while previous is not None and j < len(times) and times[j] + _TIME_TOLERANCE < start:
            fill_from_previous()
        if meter is not None and not meter.done:
            meter.add(start, _grey_grid(frame, meter.size))
        if j == len(times) and (meter is None or meter.done):
            return float("inf")
        previous, rgb = frame, None
    if previous is None:
        return float("-inf")
    while j < len(times):  # past the last frame: clamp to it
        fill_from_previous()
    return previous.time - origin + float((previous.duration or 0) * previous.time_base)


# 8-bit pixel formats whose first plane is the luma, one byte per pixel
_LUMA_FIRST = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p",
                         "yuvj440p", "yuv411p", "yuv410p", "nv12", "nv21", "nv16", "gray"})


def _grey_grid(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """uint8 grey [h, w] of a decoded frame at a grid of ``size`` = (w, h) points across it.

    The luma plane is read where it is one (most video): sampling points, not scaling, is what
    keeps the motion channel nearly free beside decoding; other formats are converted to grey first.
    """
    w, h = size
    rows = ((np.arange(h) + 0.5) * frame.height / h).astype(np.intp)
    cols = ((np.arange(w) + 0.5) * frame.width / w).astype(np.intp)
    name = frame.format.name
    if name not in _LUMA_FIRST:
        return frame.to_ndarray(format="gray")[np.ix_(rows, cols)]
    plane = frame.planes[0]
    grid = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[np.ix_(rows, cols)]
    if name.startswith("yuvj") or name == "gray" or frame.color_range == av.video.reformatter.ColorRange.JPEG:
        return grid
    # limited ("TV") range luma, 16-235, to the full range a grey conversion gives
    return np.clip((grid.astype(np.float32) - 16) * (255 / 219) + 0.5, 0, 255).astype(np.uint8)


def _check_not_truncated(path: str, times: np.ndarray, data_end: float) -> None:
    """MediaError if the times reach well past the last decodable frame (a file cut short)."""
    if times[-1] > data_end + _TRUNCATION_SLACK:
        where = f"ends at {data_end:.2f} s" if data_end > float("-inf") else "has no decodable frames"
        raise MediaError(path, f"video data {where}, before {times[-1]:.2f} s (truncated or corrupt?)")


# ---------------------------------------------------------------------------------------------
# Audio


def audio_sample_rate(path) -> int:
    """The sample rate of a file's first audio stream (to decode it without resampling)."""
    path = _check_file(path)
    with _open_media(path) as container:
        if not container.streams.audio:
            raise MediaError(path, "has no audio stream")
        return int(container.streams.audio[0].codec_context.sample_rate)


def decode_audio(path, sample_rate: int = 32000, channels: int = 1, start: float = 0.0,
                 duration: float | None = None) -> np.ndarray:
    """First audio stream of a video or audio file -> float32 [channels, samples] at ``sample_rate``.

    Decoding and resampling happen in one pass (av.AudioResampler, to mono for a mono source and
    to stereo for any other). Mono output averages left and right, stereo output from a mono
    source repeats it: levels are kept (FFmpeg's own up/downmix scales by 1/sqrt(2), and its
    downmix of loud stereo can exceed 1). The result covers [start, start + duration) of the
    file's timeline (default: to its end); it is shorter when the audio ends earlier, and
    starts with silence when the audio starts later.
    """
    if channels not in _LAYOUTS:
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    path = _check_file(path)
    with _open_media(path) as container:
        if not container.streams.audio:
            raise MediaError(path, "has no audio stream")
        stream = container.streams.audio[0]
        try:
            decoded_channels = 1 if stream.codec_context.channels == 1 else 2
            chunks, first = _decode_resampled(container, stream, sample_rate, decoded_channels, start, duration)
        except av.error.FFmpegError:
            raise MediaError(path, "cannot decode audio (corrupt or truncated?)") from None
    audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((decoded_channels, 0), dtype=np.float32)
    audio = _match_channels(audio, channels)
    # Align with `start`: drop what was decoded before it, or pad if the audio begins later.
    offset = round((start - first) * sample_rate)
    audio = audio[:, offset:] if offset >= 0 else np.pad(audio, ((0, 0), (-offset, 0)))
    if duration is not None:
        audio = audio[:, : round(duration * sample_rate)]
    return np.ascontiguousarray(audio, dtype=np.float32)


def _decode_resampled(container, stream, sample_rate: int, channels: int, start: float,
                      duration: float | None) -> tuple[list[np.ndarray], float]:
    """Resampled chunks [C, n] from (roughly) ``start`` on, and the time (s) of the first sample."""
    resampler = av.AudioResampler(format="fltp", layout=_LAYOUTS[channels], rate=sample_rate)
    if start > 0:  # seek a little early: audio seeks may land late (mp3); the caller trims
        container.seek(max(0, int((start - 0.5) / stream.time_base)), stream=stream, backward=True)
    chunks, first, have = [], None, 0
    end = None if duration is None else start + duration
    for frame in container.decode(stream):
        if first is None and frame.time is not None:
            first = frame.time
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray())
            have += out.samples
        if end is not None and first is not None and first + have / sample_rate >= end:
            break  # enough decoded
    else:
        chunks += [out.to_ndarray() for out in resampler.resample(None)]  # flush the resampler's tail
    return chunks, (first if first is not None else 0.0)


def _match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """[1 or 2, S] -> [channels, S]: average stereo into mono, or repeat mono into stereo."""
    if audio.shape[0] == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    return np.repeat(audio, channels, axis=0)


def write_wav(path, audio: np.ndarray, sample_rate: int) -> None:
    """float32 [C, S] in [-1, 1] (or [S] mono) -> 16-bit PCM WAV, whole or not at all (see outputs)."""
    audio = _channels_first(audio)
    with atomic_outputs(path) as (tmp,):
        _write_pcm16(tmp, audio, sample_rate)


def _write_pcm16(path, audio: np.ndarray, sample_rate: int, chunk: int = 1 << 18) -> None:
    """The WAV through a Python file, so a full disk is an OSError with its errno (libsndfile says only
    "System error"); converted chunk by chunk, scaled like libsndfile (x 32767, rounded)."""
    try:
        with open(path, "wb") as f, wave.open(f, "wb") as w:
            w.setnchannels(audio.shape[0])
            w.setsampwidth(2)
            w.setframerate(int(sample_rate))
            for lo in range(0, audio.shape[1], chunk):
                pcm = np.rint(np.clip(audio[:, lo:lo + chunk], -1.0, 1.0) * 32767.0).astype("<i2")
                w.writeframes(np.ascontiguousarray(pcm.T).tobytes())
    except OSError as err:  # a failed write() names no file: name this one, so the error names the WAV
        raise OSError(err.errno, err.strerror, os.fspath(path)) from None


def _channels_first(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[0] not in _LAYOUTS:
        raise ValueError(f"audio must be [channels, samples] with 1 or 2 channels, got shape {audio.shape}")
    return audio


# ---------------------------------------------------------------------------------------------
# Muxing


def check_muxable(video_path, out_path) -> None:
    """MediaError/OutputError now, before any generation, if ``video_path``'s video stream cannot be
    copied into ``out_path``'s container (H.264 into WebM) or the extension is not one we write."""
    video_path, out_path = _check_file(video_path), os.fspath(out_path)
    ext = _output_ext(out_path)
    with _open_media(video_path) as src:
        dst = av.open(io.BytesIO(), "w", format=OUTPUT_FORMATS[ext][0])  # a header in memory, nothing on disk
        try:
            _copy_stream(dst, _video_stream(src, video_path), video_path, ext)
            dst.start_encoding()
        except av.error.FFmpegError as err:
            raise MediaError(video_path, f"its video cannot be copied into a {ext} file ({_reason(err)}); "
                                         f"try an .mkv output") from None
        finally:
            dst.close()


def _output_ext(out_path: str) -> str:
    ext = os.path.splitext(out_path)[1].lower()
    if ext not in OUTPUT_FORMATS:
        raise OutputError(out_path, f"unsupported output type {ext or '(none)'}; use one of {', '.join(OUTPUT_FORMATS)}")
    return ext


def mux_audio(video_path, audio: np.ndarray, sample_rate: int, out_path, duration: float | None = None,
              info: VideoInfo | None = None) -> None:
    """Write ``out_path``: the video stream of ``video_path`` copied bit for bit + ``audio`` as its only audio.

    audio: float32 [C, S] (C = 1 or 2) at ``sample_rate``; trimmed or padded with silence to the
    video's duration (or ``duration``), then encoded as AAC (Opus for .webm). The container follows
    out_path's extension (.mp4, .mov, .mkv, .webm). Rotation metadata is kept. Written through
    :func:`~video_bgm.outputs.atomic_outputs`: never half-written, and never over the input.
    """
    video_path, out_path = _check_file(video_path), os.fspath(out_path)
    ext = _output_ext(out_path)
    check_outputs(named=[out_path], inputs=[video_path])
    with atomic_outputs(out_path) as (tmp,):
        _mux_into(video_path, audio, sample_rate, tmp, ext, duration, info)


def _mux_into(video_path: str, audio: np.ndarray, sample_rate: int, tmp, ext: str, duration: float | None,
              info: VideoInfo | None) -> None:
    audio = _channels_first(audio)
    info = info or probe_video(video_path)
    # The probed duration is what the file holds, so the silence added is bounded by real data.
    target = info.duration if duration is None else duration
    _remux_with_audio(video_path, audio[:, :round(target * sample_rate)], round(target * sample_rate),
                      sample_rate, os.fspath(tmp), ext)


def _remux_with_audio(video_path: str, audio: np.ndarray, samples: int, sample_rate: int, tmp: str,
                      ext: str) -> None:
    """``audio`` [C, <= samples], then silence up to ``samples``, as the only audio beside the copied video."""
    container_format, audio_codec = OUTPUT_FORMATS[ext]
    with _open_media(video_path) as src, av.open(tmp, "w", format=container_format) as dst:
        video_in = _video_stream(src, video_path)
        video_out = _copy_stream(dst, video_in, video_path, ext)
        audio_out = dst.add_stream(audio_codec, rate=_encoder_rate(audio_codec, sample_rate),
                                   layout=_LAYOUTS[audio.shape[0]])
        # The music's t = 0 is the first frame, which need not be at pts 0.
        offset = round(float((video_in.start_time or 0) * video_in.time_base) * sample_rate)
        packets = heapq.merge(_copied_packets(src, video_in, video_out),
                              _encoded_packets(audio_out, audio, samples, sample_rate, offset), key=_packet_time)
        try:
            for packet in packets:
                dst.mux(packet)
        except av.error.FFmpegError as err:
            if isinstance(err, OSError):  # the disk, not the codec: atomic_outputs names the output
                raise
            raise MediaError(video_path, f"cannot copy its video into a {ext} file ({_reason(err)}); "
                                         f"try an .mkv output") from None


def _copy_stream(dst, video_in, video_path: str, ext: str):
    """An output stream that takes video_in's packets unchanged (codec parameters and display matrix copied)."""
    try:
        return dst.add_stream_from_template(video_in)
    except ValueError:  # PyAV: "<format> format does not support <codec> codec"
        raise MediaError(video_path, f"its {video_in.codec_context.name} video cannot be copied into a "
                                     f"{ext} file; use .mkv instead") from None


def _encoder_rate(codec: str, sample_rate: int) -> int:
    """``sample_rate`` if the encoder takes it, else its highest rate (PyAV resamples while encoding)."""
    rates = av.Codec(codec, "w").audio_rates
    return sample_rate if not rates or sample_rate in rates else max(rates)


def _copied_packets(src, video_in, video_out):
    for packet in src.demux(video_in):
        if packet.size == 0:  # the demuxer's empty end-of-stream packet
            continue
        packet.stream = video_out  # PyAV rescales the timestamps to the output time base in mux()
        yield packet


def _encoded_packets(stream, audio: np.ndarray, samples: int, sample_rate: int, offset: int, chunk: int = 16384):
    """Encode [C, S] audio then silence, ``samples`` in all, in chunks (samples ``offset`` + i on the
    output timeline); the silence is made chunk by chunk, so no array as long as the video exists."""
    layout = _LAYOUTS[audio.shape[0]]
    silence = np.zeros((audio.shape[0], chunk), dtype=np.float32)
    for lo in range(0, samples, chunk):
        part = audio[:, lo:lo + chunk]
        n = min(chunk, samples - lo)
        if part.shape[1] < n:
            part = np.concatenate([part, silence[:, : n - part.shape[1]]], axis=1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = sample_rate, offset + lo, Fraction(1, sample_rate)
        yield from stream.encode(frame)
    yield from stream.encode(None)


def _packet_time(packet) -> float:
    """Decoding time in s, to interleave video and audio packets the way muxers want them.

    Matroska stores no decoding times, so with B-frames the first video packets have no dts:
    their pts is close enough for interleaving (the muxer fills in the dts itself).
    """
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float(stamp * packet.time_base) if stamp is not None else 0.0


def write_outputs(video, audio: np.ndarray, sample_rate: int, out, duration: float | None = None,
                  wav_audio: np.ndarray | None = None, info: VideoInfo | None = None) -> None:
    """Write ``out`` (``video`` with ``audio`` muxed in, see :func:`mux_audio`) and ``out`` with a
    ``.wav`` suffix (``wav_audio``, default ``audio``): renamed into place together or not at all,
    the video last (its presence means both are complete); neither may be the input."""
    video, out = _check_file(video), Path(out)
    wav = out.with_suffix(".wav")
    ext = _output_ext(os.fspath(out))
    check_outputs(named=[out, wav], inputs=[video])
    with atomic_outputs(out, wav) as (tmp_video, tmp_wav):
        _write_pcm16(tmp_wav, _channels_first(audio if wav_audio is None else wav_audio), sample_rate)
        _mux_into(video, audio, sample_rate, tmp_video, ext, duration, info)
