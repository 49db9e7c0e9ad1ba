"""Music for one video or a folder of them: variations, finishing (loudness, fades, the original
sound kept), outputs mirrored into a folder, finished ones skipped, bad files reported and skipped.

``generate.py`` and the app are thin layers over :func:`write_music` and :func:`run_folder`.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from . import loudness, media, outputs
from .config import GenerationParams
from .errors import UserInputError
from .loudness import Mix

# What a folder scan picks up: the containers FFmpeg reads that cameras, phones and editors write.

# (video, variation index, count) -> the pipeline's progress(stage, done, total), or None
ProgressFactory = Callable[[Path, int, int], Callable | None]


@dataclass
class Written:
    """One output: the video with the music (or the mix) and the WAV of the music alone."""

    video: Path
    wav: Path
    seed: int
    duration: float  # seconds of music
    notes: list[str] = field(default_factory=list)


def variation_paths(out: Path, count: int) -> list[Path]:
    """``out`` itself for one take; ``<stem>_1<ext>`` ... ``<stem>_N<ext>`` for several."""
    out = Path(out)
    if count == 1:
        return [out]
    return [out.with_name(f"{out.stem}_{i}{out.suffix}") for i in range(1, count + 1)]


def is_done(out: Path) -> bool:
    """Both files exist. They are renamed into place whole, the video last, so both are complete."""
    return Path(out).is_file() and Path(out).with_suffix(".wav").is_file()


def check_takes(video, outs: list[Path], overwrite: bool = True, named: bool = True) -> None:
    """What can fail before any generation: each take's video and WAV can be written, neither is
    the input, and the video stream fits each output container. ``named``: the user named the
    video outputs (one take of ``--out``); the WAVs beside them, and every output otherwise,
    replace an existing file only with ``overwrite``."""
    for out in map(Path, outs):
        wav = out.with_suffix(".wav")
        outputs.check_outputs(named=[out] if named else [], derived=[wav] if named else [out, wav],
                              inputs=[video], overwrite=overwrite)
    for suffix in dict.fromkeys(Path(out).suffix.lower() for out in outs):
        media.check_muxable(video, Path(outs[0]).with_suffix(suffix))


def write_music(model, video, info: media.VideoInfo, params: GenerationParams, mix: Mix, outs: list[Path],
                progress: ProgressFactory | None = None, takes: list[int] | None = None,
                overwrite: bool = True) -> list[Written]:
    """One take per path in ``outs``: take i (``takes[i]``, default i) has seed ``params.seed + i``
    (a random start when None), so a take redone later is the same take. The music is generated,
    finished per ``mix``, and written as ``out`` (muxed, exactly as long as the video) and
    ``out``.wav (the finished music alone, without the original sound). The outputs are checked
    first (:func:`check_takes`: one take's ``out`` counts as named, several takes' names do not)."""
    check_takes(video, outs, overwrite=overwrite, named=len(outs) == 1)
    takes = list(range(len(outs))) if takes is None else takes
    base = params.seed if params.seed is not None else secrets.randbelow(2**31)
    original, notes = None, [note for note in [info.duration_note()] if note]
    if mix.keep_original is not None:
        if info.has_audio:
            original = media.decode_audio(video, model.sample_rate, model.audio_channels)
        else:
            notes.append("the video has no sound of its own: the output has the music only")
    written = []
    for i, (take, out) in enumerate(zip(takes, outs)):
        report = progress(Path(video), i, len(outs)) if progress else None
        result = model.generate(video, replace(params, seed=base + take), progress=report, info=info)
        take_notes = list(notes) + [note for note in [music_not_in_video(result.duration, info.duration)] if note]
        take_notes += result.notes()  # what was done for the cuts (rerank scores, the nudge)
        music = loudness.finish(result.audio, result.sample_rate, replace(mix, keep_original=None))
        audio = music if original is None else loudness.finish(result.audio, result.sample_rate, mix, original,
                                                              notes=take_notes)
        if report:
            report("muxing", 0, 1)
        media.write_outputs(video, audio, result.sample_rate, out, duration=info.duration, wav_audio=music, info=info)
        if report:
            report("muxing", 1, 1)
        written.append(Written(Path(out), Path(out).with_suffix(".wav"), result.seed, result.duration, take_notes))
    return written


def music_not_in_video(music_seconds: float, video_seconds: float) -> str:
    """A note when the music outlasts the video: the muxed file stops with the video, the WAV does not."""
    extra = music_seconds - video_seconds
    if extra < 0.05:
        return ""
    return (f"{extra:.1f} s of the {music_seconds:g} s of music are not in the video ({video_seconds:.1f} s long); "
            "the WAV has all of it")


def read_wav(path) -> tuple[np.ndarray, int]:
    """A WAV written by write_music: float32 [C, S] and its sample rate."""
    import soundfile

    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return audio.T, rate


# ---------------------------------------------------------------------------------------------
# Folders


def videos_in(folder: Path, recursive: bool = False) -> list[Path]:
    """:func:`media.find_videos`, or a UserInputError when there are none."""
    videos = media.find_videos(folder, recursive)
    if not videos:
        raise UserInputError(f"{folder}: no videos found ({', '.join(sorted(media.VIDEO_EXTENSIONS))})"
                             + ("" if recursive else "; --recursive looks in subfolders too"))
    return videos


def mirrored_output(video: Path, root: Path, out_root: Path) -> Path:
    """``out_root/<video's path under root>``: the same container when we can write it, else
    ``<name>.mp4`` (``clip.avi`` -> ``clip.avi.mp4``, so it never collides with a ``clip.mp4``)."""
    relative = Path(video).relative_to(root)
    if relative.suffix.lower() in media.OUTPUT_FORMATS:
        return Path(out_root) / relative
    return Path(out_root) / relative.parent / f"{relative.name}.mp4"


@dataclass
class Summary:
    written: list[Written] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # outputs already there
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (video, one-line reason)

    def line(self) -> str:
        return (f"{len(self.written)} written, {len(self.skipped)} already done (skipped), "
                f"{len(self.failed)} failed")


def run_folder(model, folder, out_dir, params: GenerationParams, mix: Mix, variations: int = 1,
               recursive: bool = False, progress: ProgressFactory | None = None,
               log: Callable[[str], None] | None = None) -> Summary:
    """Every video under ``folder`` into ``out_dir`` (same layout). A video whose outputs all exist
    is skipped; one that fails (unreadable, too long, ...) is reported and the batch goes on. The
    files under ``out_dir`` are this function's own: a lone half of an output pair is made again."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    folder, out_dir = Path(folder), Path(out_dir)
    videos = videos_in(folder, recursive)
    summary = Summary()
    for n, video in enumerate(videos, 1):
        outs = variation_paths(mirrored_output(video, folder, out_dir), variations)
        name = video.relative_to(folder)
        if all(is_done(out) for out in outs):
            summary.skipped.extend(outs)
            log(f"[{n}/{len(videos)}] {name}: already done, skipped")
            continue
        try:
            info = media.probe_video(video)
            outs[0].parent.mkdir(parents=True, exist_ok=True)
            todo = [take for take, out in enumerate(outs) if not is_done(out)]
            summary.skipped.extend(out for take, out in enumerate(outs) if take not in todo)
            written = write_music(model, video, info, params, mix, [outs[t] for t in todo], progress, takes=todo)
        except KeyboardInterrupt:
            raise
        except UserInputError as err:  # media, model-input and option problems: one line
            summary.failed.append((video, str(err)))
            log(f"[{n}/{len(videos)}] {name}: FAILED: {err}")
            continue
        except Exception as err:  # anything else in one file must not stop the batch either
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            summary.failed.append((video, reason))
            log(f"[{n}/{len(videos)}] {name}: FAILED: {reason}")
            continue
        summary.written.extend(written)
        for w in written:
            log(f"[{n}/{len(videos)}] {name}: wrote {w.video} (seed {w.seed})"
                + "".join(f"; {note}" for note in w.notes))
    return summary
