"""Small, deterministic test media written with PyAV (no ffmpeg binary needed).

Every frame of a test video is filled with a colour that encodes its index ``k`` (see
:func:`frame_color` / :func:`decode_frame_index`), so a test can tell exactly WHICH frame a
decoder returned, and carries a white marker in its top-left quadrant (as stored), so a
test can tell how a frame was rotated. The audio is a sine tone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

Color = tuple[int, int, int]

# Container per extension, and the audio codec each test file gets (WebM cannot hold AAC).
_VIDEO_FORMATS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
_AUDIO_FORMATS = {".wav": ("wav", "pcm_s16le"), ".flac": ("flac", "flac"),
                  ".mp3": ("mp3", "libmp3lame"), ".m4a": ("ipod", "aac")}
_OPUS_RATE = 48000  # libopus only takes 8/12/16/24/48 kHz
_STEP = 16  # colour quantum per digit: survives lossy compression (errors stay below STEP / 2)
_MARKER = (255, 255, 255)


def frame_color(k: int) -> Color:
    """The colour of frame ``k``: its index in base 16, one digit per channel (4096 distinct frames)."""
    return tuple(_STEP * ((k // 16**c) % 16) + _STEP // 2 for c in range(3))


def decode_frame_index(frame) -> int:
    """Frame index from a decoded RGB frame [H, W, 3] (numpy or torch, uint8) of a test video.

    Uses the per-channel median, so the marker quadrant (a quarter of the pixels) and
    compression noise at the edges do not matter.
    """
    rgb = np.asarray(frame).reshape(-1, 3).astype(np.float64)
    digits = np.clip(np.round((np.median(rgb, axis=0) - _STEP // 2) / _STEP), 0, 15).astype(int)
    return int(digits[0] + 16 * digits[1] + 256 * digits[2])


def frame_schedule(duration: float, fps: float, variable_frame_rate: bool = False) -> np.ndarray:
    """Presentation times (s, float64) of the frames :func:`write_test_video` writes.

    Constant rate: ``k / fps``. Variable rate: gaps alternate 0.5/fps and 1.5/fps, i.e. frame
    2m is at 2m/fps and frame 2m+1 at (2m + 0.5)/fps (same average rate).
    """
    ticks = _frame_ticks(duration, fps, variable_frame_rate)
    return ticks / (2 * float(fps))


def _frame_ticks(duration: float, fps: float, variable_frame_rate: bool) -> np.ndarray:
    """Frame times in units of 1/(2 fps), the time base every test video uses (exact integers)."""
    limit = int(np.ceil(duration * fps)) * 2 + 2
    if variable_frame_rate:
        ticks = np.array([4 * (k // 2) + (k % 2) for k in range(limit)], dtype=np.int64)
    else:
        ticks = 2 * np.arange(limit, dtype=np.int64)
    return ticks[ticks / (2 * float(fps)) < duration]


def write_test_video(path, duration: float = 2.0, fps: float = 10, size: tuple[int, int] = (64, 48),
                     codec: str = "libx264", audio: bool = True, audio_rate: int = 44100,
                     audio_channels: int = 2, rotation: int = 0,
                     color_fn: Callable[[float], Color] | None = None,
                     variable_frame_rate: bool = False, audio_freq: float = 440.0) -> str:
    """Write a test video and return its path as a string.

    path: .mp4, .mov, .mkv or .webm (use codec="libvpx-vp9" for .webm).
    size: (width, height) of the STORED frames; odd sizes use 4:4:4 chroma (libx264/vp9 only).
    rotation: clockwise degrees a player should rotate by (display-matrix metadata; frames stay as stored).
    color_fn: t (s) -> (r, g, b) replaces the frame-index colour (the marker stays).
    audio: a sine tone of ``audio_freq`` Hz, AAC (Opus at 48 kHz in .webm).
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _VIDEO_FORMATS:
        raise ValueError(f"unsupported test video extension {ext!r}")
    width, height = size
    ticks = _frame_ticks(duration, fps, variable_frame_rate)
    time_base = 1 / (2 * Fraction(fps).limit_denominator(1001))
    with av.open(str(path), "w", format=_VIDEO_FORMATS[ext]) as out:
        video = _add_video_stream(out, codec, width, height, fps, time_base, rotation)
        sound = _add_audio_stream(out, ext, audio_rate, audio_channels) if audio else None
        tone = _ToneWriter(sound, audio_freq) if sound else None
        for i, tick in enumerate(ticks):
            t = float(tick * time_base)
            _mux(out, video.encode(_video_frame(i, t, width, height, color_fn, int(tick))))
            if tone:  # interleave: audio up to the next frame's time (or the end)
                next_t = float(ticks[i + 1] * time_base) if i + 1 < len(ticks) else duration
                _mux(out, tone.encode_until(next_t))
        _mux(out, video.encode(None))
        if tone:
            _mux(out, tone.flush())
    return str(path)


def _add_video_stream(out, codec: str, width: int, height: int, fps: float, time_base: Fraction,
                      rotation: int):
    even = width % 2 == 0 and height % 2 == 0
    if not even and codec not in ("libx264", "libvpx-vp9"):
        raise ValueError(f"{codec} needs even frame sizes, got {width}x{height}")
    options = {"deadline": "realtime", "cpu-used": "8"} if codec == "libvpx-vp9" else {}
    stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=options)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p" if even else "yuv444p"  # 4:2:0 chroma needs even sizes
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    if rotation % 360:
        # PyAV takes counter-clockwise degrees (as VideoFrame.rotation reads them back).
        stream.set_display_rotation(-rotation)
    return stream


def _video_frame(k: int, t: float, width: int, height: int, color_fn, pts: int) -> av.VideoFrame:
    """Frame ``k`` at ``t`` s: the index colour (or color_fn(t)) plus the top-left marker."""
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    rgb[:] = color_fn(t) if color_fn else frame_color(k)
    rgb[: height // 2, : width // 2] = _MARKER
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    frame.pts = pts
    return frame


def _add_audio_stream(out, ext: str, rate: int, channels: int):
    layout = {1: "mono", 2: "stereo"}[channels]
    if ext == ".webm":
        return out.add_stream("libopus", rate=_OPUS_RATE, layout=layout)
    return out.add_stream("aac", rate=rate, layout=layout)


class _ToneWriter:
    """Encodes a continuous sine tone into ``stream`` chunk by chunk."""

    def __init__(self, stream, freq: float, amplitude: float = 0.5):
        self.stream, self.freq, self.amplitude = stream, freq, amplitude
        self.rate = stream.codec_context.sample_rate
        self.channels = stream.codec_context.layout.nb_channels
        self.written = 0  # samples so far

    def encode_until(self, t: float) -> list:
        end = round(t * self.rate)
        if end <= self.written:
            return []
        samples = sine(self.freq, self.rate, end - self.written, self.channels, self.amplitude, self.written)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp",
                                           layout=self.stream.codec_context.layout.name)
        frame.sample_rate, frame.pts = self.rate, self.written
        frame.time_base = Fraction(1, self.rate)
        self.written = end
        return self.stream.encode(frame)

    def flush(self) -> list:
        return self.stream.encode(None)


def sine(freq: float, rate: int, n: int, channels: int = 1, amplitude: float = 0.5, offset: int = 0) -> np.ndarray:
    """float32 [channels, n]: a sine of ``freq`` Hz at ``rate`` Hz, samples offset..offset+n."""
    t = (offset + np.arange(n)) / rate
    wave = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(wave[None], channels, axis=0)


def _mux(out, packets) -> None:
    for packet in packets:
        out.mux(packet)


def write_test_audio(path, duration: float, sample_rate: int = 44100, channels: int = 1,
                     freq: float = 440.0) -> str:
    """Write a sine tone (.wav 16-bit PCM, .flac, .mp3 or .m4a by extension); returns the path."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _AUDIO_FORMATS:
        raise ValueError(f"unsupported test audio extension {ext!r}")
    fmt, codec = _AUDIO_FORMATS[ext]
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=sample_rate, layout={1: "mono", 2: "stereo"}[channels])
        tone = _ToneWriter(stream, freq)
        _mux(out, tone.encode_until(duration))
        _mux(out, tone.flush())
    return str(path)


# A paired set whose music depends on the picture: each clip's colour picks its tone's pitch.
PAIRED_COLOURS: tuple[Color, ...] = ((230, 30, 30), (30, 230, 30), (30, 30, 230), (230, 230, 30))
PAIRED_PITCHES: tuple[float, ...] = (220.0, 440.0, 880.0, 1760.0)


def write_paired_clips(folder, count: int, duration: float = 3.0, fps: float = 10,
                       size: tuple[int, int] = (32, 32)) -> Path:
    """``folder/clip00.mp4`` ...: flat-colour videos whose colour picks the pitch of their mono tone,
    so a video encoder can learn the music from the picture (a positive conditioning gain).

    Every clip differs (each group of four is 0.1 s longer than the last), so a content-keyed
    cache cannot merge them and held-out clips are new files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        colour, pitch = PAIRED_COLOURS[i % 4], PAIRED_PITCHES[i % 4]
        write_test_video(folder / f"clip{i:02d}.mp4", duration=duration + 0.1 * (i // 4), fps=fps, size=size,
                         color_fn=lambda t, c=colour: c, audio_freq=pitch, audio_channels=1)
    return folder


# Timeline sets (videos_and_wavs layout: OUT/videos/*.mp4 + OUT/audio/*.wav), where the music
# follows WHEN something happens in the picture, not only what it shows.
TIMELINE_RATE = 32000
MOTION_SPEEDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4)  # bar sweeps across the frame per second
MOTION_CLICKS: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0)  # clicks per second, one rate per speed


def write_switch_clips(folder, count: int, duration: float = 4.0, fps: float = 10,
                       size: tuple[int, int] = (32, 32)) -> Path:
    """Clips whose colour changes at mid-clip, and the tone's pitch with it (colour picks pitch as in
    ``write_paired_clips``): every ordered pair of two different colours in turn, so only a model
    that knows *when* each colour is shown can place the pitches (the order gain)."""
    import soundfile

    folder = Path(folder)
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    (folder / "audio").mkdir(exist_ok=True)
    pairs = [(a, b) for a in range(4) for b in range(4) if a != b]
    for i in range(count):
        a, b = pairs[i % len(pairs)]
        seconds = duration + 0.1 * (i // len(pairs))  # every clip differs (the cache keys by content)
        switch = seconds / 2
        write_test_video(folder / "videos" / f"switch{i:02d}.mp4", duration=seconds, fps=fps, size=size, audio=False,
                         color_fn=lambda t, a=a, b=b, switch=switch: PAIRED_COLOURS[a] if t < switch else PAIRED_COLOURS[b])
        t = np.arange(round(seconds * TIMELINE_RATE)) / TIMELINE_RATE
        pitch = np.where(t < switch, PAIRED_PITCHES[a], PAIRED_PITCHES[b])
        soundfile.write(folder / "audio" / f"switch{i:02d}.wav", (0.5 * np.sin(2 * np.pi * pitch * t)).astype(np.float32),
                        TIMELINE_RATE)
    return folder


def write_motion_clips(folder, count: int, duration: float = 4.0, fps: float = 10,
                       size: tuple[int, int] = (32, 32)) -> Path:
    """Clips of one grey picture with a dark bar sweeping across it at one of four speeds, from a
    position of its own per clip; the music is a click track whose rate the speed sets. Only how
    fast the picture moves tells the clips apart."""
    import soundfile

    folder = Path(folder)
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    (folder / "audio").mkdir(exist_ok=True)
    width, height = size
    bar = max(1, width // 8)
    rng = np.random.default_rng(0)
    for i in range(count):
        k = i % len(MOTION_SPEEDS)
        seconds = duration + 0.1 * (i // len(MOTION_SPEEDS))
        phase = float(rng.uniform())
        frames = round(seconds * fps)
        time_base = 1 / (2 * Fraction(fps).limit_denominator(1001))
        with av.open(str(folder / "videos" / f"motion{i:02d}.mp4"), "w", format="mp4") as out:
            video = _add_video_stream(out, "libx264", width, height, fps, time_base, 0)
            for j in range(frames):
                rgb = np.full((height, width, 3), 128, dtype=np.uint8)
                x = int(((phase + j / fps * MOTION_SPEEDS[k]) % 1.0) * (width - bar))
                rgb[:, x:x + bar] = 40
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = 2 * j
                _mux(out, video.encode(frame))
            _mux(out, video.encode(None))
        clicks = click_track(np.arange(0, seconds, 1 / MOTION_CLICKS[k]), seconds, TIMELINE_RATE)[0]
        soundfile.write(folder / "audio" / f"motion{i:02d}.wav", clicks, TIMELINE_RATE)
    return folder


def write_text_file(path, text: str = "this is not a video\n") -> str:
    """A plain text file (e.g. named .mp4) for error tests."""
    Path(path).write_text(text)
    return os.fspath(path)


# --- music with known beats (for the beat tracker and the beat-on-cut levers) -----------------
# Debian's fluid-soundfont-gm; fluidsynth renders a General MIDI file with it, offline.
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
# Corpus scores (bundled with music21) whose beats fall on whole quarter notes from the MIDI file's
# start (their pickups last whole quarters), so at ``bpm`` the beats are at k * 60 / bpm s.
ON_BEAT_SCORES = ("bach/bwv66.6", "ryansMammoth/BanjoReel")


def click_track(times, duration: float, sample_rate: int, channels: int = 1) -> np.ndarray:
    """float32 [channels, duration * rate]: a 20 ms decaying 1 kHz click starting at each of ``times``."""
    n = round(duration * sample_rate)
    out = np.zeros(n, dtype=np.float32)
    length = round(0.02 * sample_rate)
    t = np.arange(length) / sample_rate
    click = (0.8 * np.sin(2 * np.pi * 1000 * t) * np.exp(-t / 0.004)).astype(np.float32)
    for time in times:
        at = round(time * sample_rate)
        if 0 <= at < n:
            out[at : at + length] += click[: n - at]
    return np.repeat(out[None], channels, axis=0)


def render_score(name: str, bpm: float, sample_rate: int, folder, seconds: float | None = None) -> np.ndarray:
    """float32 [S]: music21's corpus score ``name`` played at ``bpm`` quarter notes per minute,
    written to MIDI and rendered by fluidsynth with the General MIDI soundfont (``SOUNDFONT``), cut to
    ``seconds``. Needs the ``music21`` package and Debian's ``fluidsynth`` and ``fluid-soundfont-gm``."""
    import shutil
    import subprocess

    import soundfile
    from music21 import corpus, tempo

    if shutil.which("fluidsynth") is None or not SOUNDFONT.is_file():
        raise RuntimeError(f"rendering music needs fluidsynth and {SOUNDFONT} (apt-get install fluidsynth fluid-soundfont-gm)")
    score = corpus.parse(name)
    for mark in list(score.recurse().getElementsByClass(tempo.MetronomeMark)):
        mark.activeSite.remove(mark)
    (score.parts[0] if score.parts else score).insert(0, tempo.MetronomeMark(number=bpm, referent=1.0))
    folder = Path(folder)
    stem = name.replace("/", "_").replace(".", "_") + f"_{bpm:g}"
    midi, wav = folder / f"{stem}.mid", folder / f"{stem}.wav"
    score.write("midi", fp=str(midi))
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(sample_rate), "-F", str(wav),
                    str(SOUNDFONT), str(midi)], check=True, capture_output=True)
    audio, rate = soundfile.read(str(wav), dtype="float32", always_2d=True)
    assert rate == sample_rate, (rate, sample_rate)
    audio = audio.mean(axis=1)
    return audio[: round(seconds * sample_rate)] if seconds else audio


# --- raw footage for dataset preparation: shots with known cuts, pictures and sounds ---------------
@dataclass(frozen=True)
class Shot:
    """One shot of synthetic footage.

    picture: "moving" (a textured background, its own per ``seed``, with a bar sweeping across it),
    "static" (the same, still), "black". sound: "music" (a chord below 300 Hz), "speech" (noise bursts
    at syllable rate in 500-3000 Hz over a quiet chord), "silence". Two shots with the same seed and
    picture show the same frames at the same times from their starts (a duplicated segment).
    """

    seconds: float
    picture: str = "moving"
    sound: str = "music"
    seed: int = 0


MUSIC_BAND = (0.0, 300.0)     # Hz: where the synthetic music lives
SPEECH_BAND = (500.0, 3000.0)  # Hz: where the synthetic speech lives


def write_footage(path, shots: list[Shot], fps: float = 10, size: tuple[int, int] = (64, 48),
                  sample_rate: int = 44100, grain: int = 0) -> tuple[str, list[float]]:
    """Write ``shots`` one after another (H.264 + stereo AAC); returns the path and the cut times (s).

    grain: the amplitude of random per-frame noise (0-255 scale), the detail real footage has and
    that makes it as costly to decode and encode (benchmarks); 0 for tests.
    """
    noise = np.random.default_rng(0)
    width, height = size
    cuts, t0 = [], 0.0
    frames_per_shot = [round(s.seconds * fps) for s in shots]
    with av.open(str(path), "w", format="mp4") as out:
        video = _add_video_stream(out, "libx264", width, height, fps, 1 / (2 * Fraction(fps).limit_denominator(1001)), 0)
        sound = out.add_stream("aac", rate=sample_rate, layout="stereo")
        tick, written = 0, 0
        for index, (shot, count) in enumerate(zip(shots, frames_per_shot)):
            if index:
                cuts.append(round(t0, 6))
            texture = _texture(shot.seed, width, height)
            audio = _shot_sound(shot, round((t0 + count / fps) * sample_rate) - written, sample_rate, written)
            for k in range(count):
                picture = _footage_frame(shot, texture, k / fps, width, height)
                if grain:
                    picture = (picture.astype(np.int16) + noise.integers(-grain, grain + 1, picture.shape, dtype=np.int16)
                               ).clip(0, 255).astype(np.uint8)
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                frame.pts = 2 * (tick + k)
                _mux(out, video.encode(frame))
            if audio.shape[1]:
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio), format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts, chunk.time_base = sample_rate, written, Fraction(1, sample_rate)
                _mux(out, sound.encode(chunk))
            written += audio.shape[1]
            tick += count
            t0 = tick / fps
        _mux(out, video.encode(None))
        _mux(out, sound.encode(None))
    return str(path), cuts


def _texture(seed: int, width: int, height: int) -> np.ndarray:
    """A smooth random RGB pattern [H, W, 3] in 40..215 (low frequencies: it survives compression)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(40, 215, size=(4, 4, 3))
    ys, xs = np.linspace(0, 3, height), np.linspace(0, 3, width)
    y0, x0 = np.floor(ys).astype(int).clip(0, 2), np.floor(xs).astype(int).clip(0, 2)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.uint8)


def _footage_frame(shot: Shot, texture: np.ndarray, t: float, width: int, height: int) -> np.ndarray:
    if shot.picture == "black":
        return np.zeros((height, width, 3), dtype=np.uint8)
    frame = texture.copy()
    if shot.picture == "moving":  # a dark bar sweeping left to right once every 2 s
        bar = width // 8
        x = int((t / 2.0) % 1.0 * (width - bar))
        frame[:, x:x + bar] //= 4
    return frame


def _shot_sound(shot: Shot, n: int, rate: int, offset: int) -> np.ndarray:
    """float32 [2, n] for a shot starting at sample ``offset`` of the file."""
    t = (offset + np.arange(max(n, 0))) / rate
    chord = sum(np.sin(2 * np.pi * f * t) for f in (110.0, 138.6, 164.8)) / 3
    if shot.sound == "silence":
        wave = np.zeros_like(t)
    elif shot.sound == "music":
        wave = 0.4 * chord
    else:  # speech: band-limited noise in syllables (4 per second) over a quiet chord
        rng = np.random.default_rng(shot.seed + 1000)
        noise = np.fft.rfft(rng.standard_normal(len(t)))
        freqs = np.fft.rfftfreq(len(t), 1 / rate)
        noise[(freqs < SPEECH_BAND[0]) | (freqs > SPEECH_BAND[1])] = 0
        voice = np.fft.irfft(noise, len(t))
        voice *= 0.3 / (np.abs(voice).max() + 1e-9)
        wave = voice * (np.sin(2 * np.pi * 4 * t) > 0) + 0.05 * chord
    return np.repeat(wave.astype(np.float32)[None], 2, axis=0)
