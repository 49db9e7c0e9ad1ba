"""Media layer: probing, frame sampling, audio decoding, WAV writing and muxing, on generated clips."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
import torch

from video_bgm import media
from video_bgm.errors import MediaError, OutputError
from video_bgm.synthetic import (decode_frame_index, frame_schedule, sine, write_test_audio,
                                 write_test_video, write_text_file)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """make(name, **write_test_video kwargs) -> path; each clip is written once per module."""
    folder = tmp_path_factory.mktemp("clips")
    made: dict[str, str] = {}

    def make(name: str, **kwargs) -> str:
        if name not in made:
            made[name] = write_test_video(folder / name, **kwargs)
        return made[name]

    return make


def indices_of(frames: torch.Tensor) -> list[int]:
    return [decode_frame_index(frame) for frame in frames]


def expected_indices(times: np.ndarray, schedule: np.ndarray) -> list[int]:
    """The frame whose [start, next start) interval holds each time."""
    return (np.searchsorted(schedule, times, side="right") - 1).tolist()


def packets(path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def audio_seconds(path) -> tuple[float, list[str]]:
    """(decoded seconds of the first audio stream, codec names of all audio streams)."""
    with av.open(str(path)) as container:
        streams = container.streams.audio
        samples = sum(frame.samples for frame in container.decode(streams[0]))
        return samples / streams[0].codec_context.sample_rate, [s.codec_context.name for s in streams]


def peak_hz(audio: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio[0] * np.hanning(audio.shape[1])))
    return float(np.argmax(spectrum)) * sample_rate / audio.shape[1]


def quadrant_means(frame: torch.Tensor) -> dict[str, float]:
    """Mean brightness of each quadrant of a displayed frame [H, W, 3]."""
    h, w = frame.shape[0] // 2, frame.shape[1] // 2
    f = frame.float().mean(dim=2)
    return {"top-left": f[:h, :w].mean().item(), "top-right": f[:h, -w:].mean().item(),
            "bottom-left": f[-h:, :w].mean().item(), "bottom-right": f[-h:, -w:].mean().item()}


# ----------------------------------------------------------------------------------------------
# probe_video


@pytest.mark.parametrize("name, codec", [("c.mp4", "libx264"), ("c.mov", "libx264"), ("c.mkv", "libx264"),
                                         ("c.webm", "libvpx-vp9"), ("m.mp4", "mpeg4")])
def test_probe_containers(clips, name, codec):
    info = media.probe_video(clips(name, codec=codec))
    assert info.duration == pytest.approx(2.0, abs=1e-3)
    assert info.fps == pytest.approx(10.0)
    assert info.num_frames == 20
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert info.has_audio
    assert info.video_codec == {"libx264": "h264", "libvpx-vp9": "vp9", "mpeg4": "mpeg4"}[codec]
    assert info.path == clips(name)


def test_probe_without_audio_and_pathlike(clips):
    info = media.probe_video(Path(clips("silent.mp4", audio=False)))
    assert not info.has_audio and info.path == clips("silent.mp4")


def test_probe_odd_size_and_60fps(clips):
    odd = media.probe_video(clips("odd.mp4", size=(63, 47)))
    assert (odd.width, odd.height) == (63, 47)
    fast = media.probe_video(clips("60.mp4", fps=60))
    assert fast.fps == pytest.approx(60.0) and fast.num_frames == 120


# ----------------------------------------------------------------------------------------------
# Rotation: stored landscape frames with a white top-left marker; display rotates them clockwise.

WHERE_MARKER_SHOWS = {0: "top-left", 90: "top-right", 180: "bottom-right", 270: "bottom-left"}


@pytest.mark.parametrize("rotation", [90, 180, 270])
@pytest.mark.parametrize("name, size, codec", [
    ("rot.mp4", (80, 60), "libx264"),
    ("rot.mkv", (80, 60), "libx264"),
    ("rot.webm", (80, 60), "libvpx-vp9"),
    ("rot48.mp4", (64, 48), "libx264"),  # a displayed width of 48 px (once a decord bug)
])
def test_rotation_metadata_gives_displayed_frames(clips, rotation, name, size, codec):
    path = clips(f"{rotation}-{name}", size=size, codec=codec, rotation=rotation, duration=1.0)
    info = media.probe_video(path)
    assert info.rotation == rotation
    landscape = (size[0], size[1])
    assert (info.width, info.height) == (landscape[::-1] if rotation in (90, 270) else landscape)

    frames, times = media.sample_frames(path, 5, info)
    assert frames.shape == (5, info.height, info.width, 3)
    assert indices_of(frames) == [0, 2, 4, 6, 8]
    for frame in frames:
        quadrants = quadrant_means(frame)
        brightest = max(quadrants, key=quadrants.get)
        assert brightest == WHERE_MARKER_SHOWS[rotation], quadrants
        assert quadrants[brightest] > 200


def test_portrait_phone_video(clips):
    """The common phone case: landscape sensor frames + 'rotate 90' -> portrait frames."""
    info = media.probe_video(clips("phone.mp4", size=(96, 64), rotation=90, duration=0.5))
    frames, _ = media.sample_frames(info.path, 4, info)
    assert info.width < info.height and frames.shape[1:] == (96, 64, 3)


def test_unrotated_frames_keep_marker_top_left(clips):
    frames, _ = media.sample_frames(clips("c.mp4", codec="libx264"), 1)
    quadrants = quadrant_means(frames[0])
    assert max(quadrants, key=quadrants.get) == "top-left"


# ----------------------------------------------------------------------------------------------
# frame_times / sample_frames


def test_frame_times():
    assert np.array_equal(media.frame_times(2.0, 10), np.arange(20) / 10)
    assert len(media.frame_times(0.3, 10)) == 3  # 0.3 * 10 is 3.0000000000000004 in floats
    assert media.frame_times(0.001, 10).tolist() == [0.0]
    assert len(media.frame_times(0.0, 10)) == 0
    assert media.frame_times(1.0, 3).dtype == np.float64
    with pytest.raises(ValueError):
        media.frame_times(1.0, 0)


@pytest.mark.parametrize("name, kwargs", [
    ("c.mp4", {"codec": "libx264"}), ("c.mkv", {"codec": "libx264"}), ("c.webm", {"codec": "libvpx-vp9"}),
    ("m.mp4", {"codec": "mpeg4"}), ("odd.mp4", {"size": (63, 47)}),
    ("odd.webm", {"size": (63, 47), "codec": "libvpx-vp9"}),
])
def test_sample_frames_exact_times_and_frames(clips, name, kwargs):
    path = clips(name, **kwargs)
    info = media.probe_video(path)
    frames, times = media.sample_frames(path, 4, info)
    assert times.dtype == np.float64
    assert np.array_equal(times, np.arange(8) / 4)
    assert frames.dtype == torch.uint8 and frames.shape == (8, info.height, info.width, 3)
    assert indices_of(frames) == expected_indices(times, frame_schedule(2.0, 10))


def test_sample_at_the_video_rate_gets_every_frame(clips):
    frames, times = media.sample_frames(clips("60.mp4", fps=60), 60)
    assert len(times) == 120 and indices_of(frames) == list(range(120))
    frames, _ = media.sample_frames(clips("60.mp4"), 10)
    assert indices_of(frames) == list(range(0, 120, 6))


def test_very_short_clip_gives_a_frame(clips):
    path = clips("short.mp4", duration=0.3)
    info = media.probe_video(path)
    assert info.duration == pytest.approx(0.3) and info.num_frames == 3
    frames, times = media.sample_frames(path, 1, info)
    assert times.tolist() == [0.0] and frames.shape[0] == 1
    one = clips("one.mp4", duration=0.1, audio=False)
    frames, times = media.sample_frames(one, 2)
    assert times.tolist() == [0.0] and indices_of(frames) == [0]


def test_variable_frame_rate_uses_real_timestamps(clips):
    path = clips("vfr.mp4", variable_frame_rate=True, duration=2.0)
    schedule = frame_schedule(2.0, 10, variable_frame_rate=True)  # 0, .05, .2, .25, .4, ...
    info = media.probe_video(path)
    frames, times = media.sample_frames(path, 20, info)
    got = indices_of(frames)
    assert got == expected_indices(times, schedule)
    naive = np.minimum(np.floor(times * info.num_frames / info.duration), info.num_frames - 1)
    assert got != naive.astype(int).tolist()  # a constant-rate assumption picks other frames


def test_window_start_and_duration(clips):
    path = clips("c.mp4", codec="libx264")
    frames, times = media.sample_frames(path, 4, start=0.5, duration=1.0)
    assert np.allclose(times, [0.5, 0.75, 1.0, 1.25])
    assert indices_of(frames) == [5, 7, 10, 12]
    frames, times = media.sample_frames(path, 2, start=1.5, duration=10.0)  # clamped to the end
    assert np.allclose(times, [1.5]) and indices_of(frames) == [15]
    frames, times = media.sample_frames(path, 2, start=0.5, duration=0.0)
    assert frames.shape == (0, 48, 64, 3) and len(times) == 0
    with pytest.raises(MediaError, match="past the end"):
        media.sample_frames(path, 2, start=2.0)


# ----------------------------------------------------------------------------------------------
# decode_audio


@pytest.mark.parametrize("channels", [1, 2])
def test_decode_audio_from_video(clips, channels):
    audio = media.decode_audio(clips("c.mp4", codec="libx264"), sample_rate=32000, channels=channels)
    assert audio.dtype == np.float32 and audio.shape[0] == channels
    assert audio.shape[1] / 32000 == pytest.approx(2.0, abs=0.03)  # AAC ends on a 1024-sample frame
    assert peak_hz(audio, 32000) == pytest.approx(440, abs=2)
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.05)  # down-mixing keeps the level


def test_decode_audio_from_webm_opus(clips):
    audio = media.decode_audio(clips("c.webm", codec="libvpx-vp9"), sample_rate=16000)
    assert audio.shape == (1, 32000) and peak_hz(audio, 16000) == pytest.approx(440, abs=2)


@pytest.mark.parametrize("ext", [".wav", ".flac", ".mp3"])
def test_decode_audio_files_resample_keeps_the_tone(tmp_path, ext):
    path = write_test_audio(tmp_path / f"tone{ext}", 1.0, sample_rate=22050, channels=1, freq=1000.0)
    audio = media.decode_audio(path, sample_rate=32000, channels=2)
    assert audio.shape[0] == 2 and np.array_equal(audio[0], audio[1])
    assert audio.shape[1] / 32000 == pytest.approx(1.0, abs=0.06)  # mp3 keeps some codec padding
    assert peak_hz(audio, 32000) == pytest.approx(1000, abs=3)
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.05)  # up-mixing keeps the level


def test_decode_audio_window(tmp_path):
    path = write_test_audio(tmp_path / "tone.wav", 3.0, sample_rate=44100, channels=2)
    full = media.decode_audio(path, sample_rate=32000)
    assert full.shape == (1, 96000)
    part = media.decode_audio(path, sample_rate=32000, start=1.0, duration=1.5)
    assert part.shape == (1, 48000)
    assert np.abs(part - full[:, 32000:80000]).max() < 1e-4
    tail = media.decode_audio(path, sample_rate=32000, start=2.5, duration=5.0)
    assert tail.shape == (1, 16000)  # shorter: the audio ends first


def test_decode_audio_errors(clips, tmp_path):
    silent = clips("silent.mp4", audio=False)
    with pytest.raises(MediaError, match="no audio stream") as err:
        media.decode_audio(silent)
    assert silent in str(err.value)
    with pytest.raises(MediaError, match="file not found"):
        media.decode_audio(tmp_path / "missing.wav")
    with pytest.raises(ValueError):
        media.decode_audio(silent, channels=3)


# ----------------------------------------------------------------------------------------------
# write_wav


def test_write_wav_round_trip(tmp_path):
    audio = sine(440, 32000, 16000, channels=2)
    audio[1] *= -1
    path = tmp_path / "out.wav"
    media.write_wav(path, audio, 32000)
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    assert rate == 32000 and data.shape == (16000, 2)
    assert np.abs(data.T - audio).max() <= 1 / 32767
    assert os.listdir(tmp_path) == ["out.wav"]  # no temporary file left
    media.write_wav(path, np.array([0.0, 2.0, -2.0], dtype=np.float32), 8000)  # mono, clipped, replaced
    data, _ = soundfile.read(path, dtype="float32", always_2d=True)
    assert data.shape == (3, 1) and data.max() <= 1.0 and data.min() >= -1.0


def test_write_wav_failure_leaves_nothing(tmp_path, monkeypatch):
    """A disk that fills after a few bytes: one OutputError naming the WAV and the cause, the old file kept."""
    path = tmp_path / "out.wav"
    path.write_bytes(b"previous")
    monkeypatch.setattr(media, "open", filling_disk(100), raising=False)
    with pytest.raises(OutputError) as err:
        media.write_wav(path, np.zeros((1, 32000), np.float32), 32000)
    assert str(err.value) == f"{path}: cannot write: No space left on device"
    assert os.listdir(tmp_path) == ["out.wav"] and path.read_bytes() == b"previous"


def filling_disk(capacity: int):
    """A stand-in for ``open`` whose files take ``capacity`` bytes, then fail as a full disk does."""
    import builtins
    import errno

    class FullFile:
        def __init__(self, file):
            self.file, self.written = file, 0

        def write(self, data):
            self.written += len(data)
            if self.written > capacity:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.file.name)
            return self.file.write(data)

        def __getattr__(self, name):
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    return lambda path, mode="r", *args, **kwargs: FullFile(builtins.open(path, mode, *args, **kwargs))


# ----------------------------------------------------------------------------------------------
# mux_audio


@pytest.mark.parametrize("seconds", [3.5, 0.7])  # longer and shorter than the 2 s video
@pytest.mark.parametrize("src_name, kwargs, out_name", [
    ("c.mp4", {"codec": "libx264"}, "out.mp4"),
    ("c.mkv", {"codec": "libx264"}, "out.mkv"),
    ("c.mov", {"codec": "libx264"}, "out.mov"),
    ("c.webm", {"codec": "libvpx-vp9"}, "out.webm"),
    ("c.mkv", {"codec": "libx264"}, "from-mkv.mp4"),
])
def test_mux_audio(clips, tmp_path, seconds, src_name, kwargs, out_name):
    src = clips(src_name, **kwargs)
    out = tmp_path / out_name
    music = sine(1000.0, 32000, round(seconds * 32000), channels=2)
    media.mux_audio(src, music, 32000, out)

    assert os.listdir(tmp_path) == [out_name]
    with av.open(str(out)) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        assert container.streams.video[0].codec_context.name == media.probe_video(src).video_codec
    assert packets(out) == packets(src)  # the video was copied, not re-encoded
    audio_len, codecs = audio_seconds(out)
    assert codecs == (["opus"] if out_name.endswith(".webm") else ["aac"])
    video = media.probe_video(out)
    assert abs(audio_len - video.duration) < 0.04
    # The source's 440 Hz track is gone: the only audio is the 1 kHz music, in stereo.
    decoded = media.decode_audio(out, sample_rate=32000, channels=2)
    assert peak_hz(decoded, 32000) == pytest.approx(1000, abs=3)


def test_mux_audio_mono_and_explicit_duration(clips, tmp_path):
    out = tmp_path / "mono.mp4"
    media.mux_audio(clips("c.mp4", codec="libx264"), sine(1000.0, 32000, 32000), 32000, out, duration=1.5)
    audio_len, _ = audio_seconds(out)
    assert abs(audio_len - 1.5) < 0.04
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.channels == 1


def test_mux_audio_keeps_rotation(clips, tmp_path):
    src = clips("90-rot.mp4", size=(80, 60), rotation=90, duration=1.0)
    out = tmp_path / "rotated.mp4"
    media.mux_audio(src, sine(1000.0, 32000, 32000, channels=2), 32000, out)
    info = media.probe_video(out)
    assert (info.rotation, info.width, info.height) == (90, 60, 80)
    assert packets(out) == packets(src)


def test_mux_audio_into_incompatible_container(clips, tmp_path):
    out = tmp_path / "out.webm"
    with pytest.raises(MediaError, match=r"h264.*\.mkv"):
        media.mux_audio(clips("c.mp4", codec="libx264"), sine(1000.0, 32000, 32000), 32000, out)
    assert os.listdir(tmp_path) == []
    with pytest.raises(OutputError, match="unsupported output type"):
        media.mux_audio(clips("c.mp4"), sine(1000.0, 32000, 32000), 32000, tmp_path / "out.avi")
    assert os.listdir(tmp_path) == []


def test_mux_audio_bad_input_leaves_no_output(tmp_path):
    bad = write_text_file(tmp_path / "bad.mp4")
    out = tmp_path / "out.mp4"
    with pytest.raises(MediaError, match="bad.mp4"):
        media.mux_audio(bad, sine(1000.0, 32000, 32000), 32000, out)
    assert os.listdir(tmp_path) == ["bad.mp4"]


# ----------------------------------------------------------------------------------------------
# Bad input


def _truncated(src: str, dst: Path, faststart: bool = False) -> str:
    """``src`` cut in half; with faststart the index (moov) comes first, so the header survives."""
    if faststart:
        full = dst.with_name("full-" + dst.name)
        with av.open(src) as i, av.open(str(full), "w", options={"movflags": "faststart"}) as o:
            stream = o.add_stream_from_template(i.streams.video[0])
            for packet in i.demux(i.streams.video[0]):
                if packet.size:
                    packet.stream = stream
                    o.mux(packet)
        src = str(full)
    data = Path(src).read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return str(dst)


@pytest.mark.parametrize("case, problem", [
    ("missing", "file not found"),
    ("folder", "folder"),
    ("empty", "empty"),
    ("text", "not a media file"),
    ("truncated", "corrupt/truncated"),
    ("audio-only", "no video stream"),
    ("m4a-as-mp4", "no video stream"),
    ("no-frames", "zero duration"),
    ("header-only", "truncated"),
    ("image", "still image"),
])
def test_bad_input_raises_media_error(clips, tmp_path, case, problem):
    path = tmp_path / f"{case}.mp4"
    if case == "folder":
        path.mkdir()
    elif case == "empty":
        path.touch()
    elif case == "text":
        write_text_file(path)
    elif case == "truncated":
        _truncated(clips("c.mp4", codec="libx264"), path)
    elif case == "audio-only":
        path = Path(write_test_audio(tmp_path / "tone.wav", 0.5))
    elif case == "m4a-as-mp4":
        write_test_audio(tmp_path / "tone.m4a", 0.5)
        os.rename(tmp_path / "tone.m4a", path)
    elif case == "no-frames":  # a Matroska file whose video track has no frames (its audio has some)
        path = tmp_path / "no-frames.mkv"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            sound = out.add_stream("aac", rate=32000, layout="mono")
            frame = av.AudioFrame.from_ndarray(sine(440, 32000, 3200), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 32000, 0
            for packet in sound.encode(frame) + sound.encode(None):
                out.mux(packet)
    elif case == "image":
        path = tmp_path / "picture.png"
        with av.open(str(path), "w", format="image2") as out:
            stream = out.add_stream("png", rate=1)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8))):
                out.mux(packet)
    elif case == "header-only":  # a Matroska header and nothing else
        with av.open(str(path), "w", format="matroska") as out:
            stream = out.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            out.start_encoding()
    for call in (media.probe_video, lambda p: media.sample_frames(p, 1)):
        with pytest.raises(MediaError, match=problem) as err:
            call(path)
        assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
    if case not in ("audio-only", "m4a-as-mp4", "no-frames"):  # those have good audio
        with pytest.raises(MediaError) as err:
            media.decode_audio(path)
        assert str(err.value).startswith(f"{path}: ")


def test_truncated_with_intact_header_is_as_long_as_what_is_left(clips, tmp_path):
    """The header says 3 s; half the file is there: the duration is the data's, and the claim is reported."""
    src = clips("long.mp4", duration=3.0, fps=30, size=(128, 96), audio=False)
    path = _truncated(src, tmp_path / "cut.mp4", faststart=True)
    info = media.probe_video(path)  # the header and first frame are intact
    assert info.claimed_duration == pytest.approx(3.0) and 0.3 < info.duration < 2.0
    assert info.duration_note() == (f"cut.mp4: its header says 3.00 s but its video data lasts {info.duration:.2f} s; "
                                    f"{info.duration:.2f} s used")
    frames, times = media.sample_frames(path, 2, info)  # all of what is there
    assert times[-1] < info.duration
    # Decoding still refuses times well past the last decodable frame (data that demuxes but is corrupt).
    with pytest.raises(MediaError, match="truncated"):
        media.sample_frames(path, 2, replace(info, duration=3.0))


def test_header_that_lies_long_or_short(clips, tmp_path):
    """A Matroska DURATION tag edited to 99 h, or to 1 s, over 3 s of frames: the frames decide."""
    src = Path(clips("tagged.mkv", duration=3.0, fps=10, size=(64, 48)))
    for claim, expected in ((b"99:00:03.0", "356403 s (99.0 h)"), (b"00:00:01.0", "1.00 s")):
        lying = tmp_path / f"lie-{claim[:2].decode()}.mkv"
        lying.write_bytes(lie_about_duration(src, claim))
        info = media.probe_video(lying)
        assert info.duration == pytest.approx(3.0) and info.num_frames == 30
        assert info.duration_note() == f"{lying.name}: its header says {expected} but its video data lasts 3.00 s; 3.00 s used"
    assert media.probe_video(src).duration_note() == ""


def lie_about_duration(mkv: Path, claim: bytes) -> bytes:
    """The bytes of a 3 s FFmpeg-written Matroska file with its DURATION tags saying ``claim`` (HH:MM:SS.f)."""
    data = mkv.read_bytes()
    assert data.count(b"00:00:03.0") >= 1
    return data.replace(b"00:00:03.0", claim)
