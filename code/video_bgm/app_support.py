"""What the browser app needs besides its UI: the model list, a model cache, limits, outputs, pictures.

``code/inference/gradio_app/app.py`` is a thin Gradio layer over this module; everything here
runs (and is tested) without a browser or a server.

- :func:`discover_models` / :class:`ModelList`: the models a client may choose, as label -> reference.
  A request naming anything else is refused, so a client can never make the server load a path.
- :class:`ModelCache`: one loaded model per (reference, device), kept; one generation at a time
  per device.
- :func:`check_video` / :func:`plan_duration`: the upload limits, and how much music to make.
- :func:`generate_variations`: N pieces of music for one video, muxed and written as WAV, with
  progress through every stage.
- :class:`OutputStore`: a private temporary folder per request, removed when old and at exit.
- :func:`music_picture`: a spectrogram over a waveform, as an RGB image.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from . import batch, media
from .config import GenerationParams
from .errors import MediaError, UserInputError
from .loudness import Mix
from .model_folder import folder_kind
from .spectrum import power_db

MAX_VARIATIONS = 4
_SEARCH_DEPTH = 3  # models/<group>/<name>/<folder> at most

# Share of one variation's progress bar per stage (the pipeline's stages, then the app's "muxing").
STAGE_WEIGHTS = {"frames": 0.04, "encoding": 0.04, "generating": 0.84, "decoding": 0.04, "muxing": 0.04}

# (fraction of the whole request in [0, 1], description)
ReportProgress = Callable[[float, str], None]


# ---------------------------------------------------------------------------------------------
# Which models a client may choose


def discover_models(models_dir: str | Path | None, extra: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """Label -> model reference: first the ``extra`` references (what the user asked for comes
    first and is the default: hub ids labelled as given, folders by their name, so the page never
    shows the server's paths), then the model folders under ``models_dir`` (labelled by their
    path relative to it). A folder is listed once."""
    found: dict[str, str] = {}
    for ref in extra:
        folder = Path(ref).expanduser()
        if not folder.is_dir():
            found.setdefault(str(ref), str(ref))
        elif str(folder.resolve()) not in found.values():
            label, n = folder.name, 2
            while label in found:
                label, n = f"{folder.name}-{n}", n + 1
            found[label] = str(folder.resolve())
    root = Path(models_dir).expanduser() if models_dir else None
    if root is None or not root.is_dir():
        return found
    listed = set(found.values())
    discovered = {}
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        if folder != root and folder_kind(folder) is not None:
            if str(folder.resolve()) not in listed:
                discovered[folder.relative_to(root).as_posix()] = str(folder.resolve())
            continue  # a model's own subfolders (its frozen models) are not models
        if depth < _SEARCH_DEPTH:
            stack.extend((child, depth + 1) for child in folder.iterdir()
                         if child.is_dir() and not child.name.startswith("."))
    for label in sorted(discovered):
        found.setdefault(label, discovered[label])
    return found


class ModelList:
    """The server's fixed mapping label -> reference; the only way a request names a model."""

    def __init__(self, models: dict[str, str]):
        self.models = dict(models)

    @property
    def labels(self) -> list[str]:
        return list(self.models)

    def reference(self, label) -> str:
        if not isinstance(label, str) or label not in self.models:
            raise UserInputError(f"unknown model {str(label)[:80]!r}: choose one of the listed models")
        return self.models[label]


# ---------------------------------------------------------------------------------------------
# Loaded models, one generation at a time per device


class ModelCache:
    """Loads each (reference, device) once and keeps it; ``lock(device)`` serialises generations.

    ``loader(ref, device)`` defaults to ``VideoBGM.from_pretrained`` (with ``precision``).
    """

    def __init__(self, loader: Callable | None = None, precision: str = "fp32"):
        self._loader = loader
        self._precision = precision
        self._models: dict[tuple[str, str], object] = {}
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._device_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, ref: str, device: str = "auto"):
        key = (ref, device)
        with self._guard:
            if key in self._models:
                return self._models[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # two requests for the same new model: one loads, the other waits for it
            if key not in self._models:
                model = self._load(ref, device)
                with self._guard:
                    self._models[key] = model
        return self._models[key]

    def is_loaded(self, ref: str, device: str = "auto") -> bool:
        return (ref, device) in self._models

    def lock(self, device) -> threading.Lock:
        with self._guard:
            return self._device_locks.setdefault(str(device), threading.Lock())

    def _load(self, ref: str, device: str):
        if self._loader is not None:
            return self._loader(ref, device)
        from .pipeline import VideoBGM

        # Our folders, thesis folders and hub references all load through from_pretrained.
        return VideoBGM.from_pretrained(ref, device=device, precision=self._precision)


# ---------------------------------------------------------------------------------------------
# Limits


@dataclass(frozen=True)
class Limits:
    max_upload_mb: float = 200.0  # MiB; the web server also refuses larger uploads
    max_video_seconds: float = 300.0  # longer videos are refused
    max_music_seconds: float = 300.0  # music per clip (made window by window); the app passes max_video_seconds
    max_stored_mb: float = 2000.0  # uploads and results kept at once, in MiB; the oldest go first


def display_name(path) -> str:
    """An uploaded file's own name, without the server's temporary folders."""
    return Path(str(path)).name


def check_video(path, limits: Limits) -> media.VideoInfo:
    """Probe an uploaded video; a bad file or one over the limits is a ``UserInputError``."""
    if not path:
        raise UserInputError("upload a video first")
    try:
        info = media.probe_video(path)
    except MediaError as err:  # name the user's file, not our temporary copy of it
        raise MediaError(display_name(path), err.problem) from None
    size_mb = Path(path).stat().st_size / 2**20
    if size_mb > limits.max_upload_mb:
        raise UserInputError(f"{display_name(path)}: {size_mb:.0f} MB; this server accepts videos up to "
                             f"{limits.max_upload_mb:g} MB")
    if info.duration > limits.max_video_seconds:
        raise UserInputError(f"{display_name(path)}: the video is {info.duration:.1f} s long; this server "
                             f"accepts videos up to {limits.max_video_seconds:g} s")
    return info


def plan_duration(requested: float | None, video_seconds: float, max_music_seconds: float) -> tuple[float, str]:
    """Seconds of music to make, and a note for the user when that is less than the video.

    ``requested`` None or 0 means the video's length, capped at ``max_music_seconds``; an
    explicit request over the cap is an error.
    """
    if requested:
        if requested < 0:
            raise UserInputError(f"music duration: must be positive, got {requested:g} s")
        if requested > max_music_seconds:
            raise UserInputError(f"music duration: {requested:g} s requested; this version makes at most "
                                 f"{max_music_seconds:g} s of music per clip")
        duration = float(requested)
    else:
        duration = min(video_seconds, max_music_seconds)
    note = ""
    if duration < video_seconds - 1e-3:
        note = f"The music covers the first {duration:g} s of the {video_seconds:.1f} s video; the rest is silent."
    return duration, note


# ---------------------------------------------------------------------------------------------
# Generation


@dataclass
class Variation:
    """One result: the muxed video, the WAV, a picture of the music and the seed that made it."""

    video: Path
    wav: Path
    picture: np.ndarray  # uint8 [H, W, 3]
    seed: int
    duration: float  # seconds of music
    notes: list[str] = field(default_factory=list)  # e.g. "the video has no sound of its own"


def variation_seeds(seed: int | None, count: int) -> list[int]:
    """``count`` seeds: ``seed, seed + 1, ...``, from a random start when ``seed`` is None."""
    start = secrets.randbelow(2**31) if seed is None else int(seed)
    return [start + i for i in range(count)]


def stage_progress(report: ReportProgress, index: int, count: int) -> Callable[[str, int, int], None]:
    """The pipeline's ``progress(stage, done, total)`` for variation ``index`` of ``count``,
    as one fraction of the whole request plus a description."""
    offsets, total_weight = {}, 0.0
    for stage, weight in STAGE_WEIGHTS.items():
        offsets[stage] = total_weight
        total_weight += weight

    window = ""

    def progress(stage: str, done: int, total: int) -> None:
        nonlocal window
        if stage == "window":  # long music: which window is shown with the steps, which run across windows
            window = f" (window {done}/{total})" if total > 1 else ""
            return
        within = offsets.get(stage, 0.0) + STAGE_WEIGHTS.get(stage, 0.0) * (done / total if total else 1.0)
        fraction = min(1.0, (index + within / total_weight) / count)
        what = f"{stage} {done}/{total} steps{window}" if stage == "generating" else stage
        prefix = f"variation {index + 1}/{count}: " if count > 1 else ""
        report(fraction, prefix + what)

    return progress


def output_name(video, seed: int) -> str:
    """``<video stem>_music_<seed>``, reduced to characters safe in a file name."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(str(video)).stem).strip("_")[:60] or "video"
    return f"{stem}_music_{seed}"


def output_suffix(info: media.VideoInfo) -> str:
    """WebM stays WebM (VP8/VP9 + Opus); everything else becomes MP4, which browsers play."""
    return ".webm" if str(info.path).lower().endswith(".webm") else ".mp4"


def generate_variations(model, video, info: media.VideoInfo, params: GenerationParams, count: int,
                        out_dir: Path, report: ReportProgress | None = None, mix: Mix | None = None) -> list[Variation]:
    """``count`` pieces of music for ``video`` (seeds ``params.seed``, +1, ...; random when None),
    each finished per ``mix`` (loudness, fades, the original sound kept: see loudness.Mix) and written
    as ``out_dir/<name>.mp4`` (the video with the music or the mix) and ``<name>.wav`` (the music)."""
    mix = mix or Mix()
    if not 1 <= count <= MAX_VARIATIONS:
        raise UserInputError(f"variations: choose 1 to {MAX_VARIATIONS}, got {count}")
    params.validate()
    report = report or (lambda fraction, what: None)
    results = []
    for index, seed in enumerate(variation_seeds(params.seed, count)):
        out = Path(out_dir) / f"{output_name(video, seed)}{output_suffix(info)}"
        [written] = batch.write_music(model, video, info, replace(params, seed=seed), mix, [out],
                                      progress=lambda video, i, n, index=index: stage_progress(report, index, count))
        music, rate = batch.read_wav(written.wav)
        results.append(Variation(out, written.wav, music_picture(music, rate), written.seed, written.duration,
                                 written.notes))
    return results


# ---------------------------------------------------------------------------------------------
# Temporary outputs


class OutputStore:
    """A private temporary folder with one subfolder per request.

    Subfolders older than ``max_age`` seconds are removed when a new one is made; ``close``
    removes everything (the app calls it at exit). With ``max_bytes``, :meth:`enforce_size_cap`
    keeps the results and the uploads in ``uploads`` (Gradio's folder, one subfolder per file)
    under that many bytes together, removing the oldest first: uploads alone, which never reach
    our code until a generation, could otherwise fill the disk.
    """

    def __init__(self, max_age: float = 3600.0, parent: str | None = None, max_bytes: int | None = None,
                 uploads: Path | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="video-bgm-app-", dir=parent))
        self.max_age = max_age
        self.max_bytes = max_bytes
        self.uploads = uploads
        self._lock = threading.Lock()

    def new_dir(self, prefix: str = "request-") -> Path:
        self.purge()
        self.enforce_size_cap()
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root))

    def enforce_size_cap(self, keep=()) -> int:
        """Remove the oldest entries (a request's folder, an upload's folder) until the total is at most
        ``max_bytes``, never one holding a path in ``keep``; returns the bytes removed."""
        if self.max_bytes is None:
            return 0
        keep = [Path(k).resolve() for k in keep if k]
        with self._lock:
            entries = [_entry_size(folder) for folder in self.root.glob("request-*")]
            if self.uploads is not None and self.uploads.is_dir():
                entries += [_entry_size(child) for child in self.uploads.iterdir()]
            total, removed = sum(size for _, size, _ in entries), 0
            for _, size, folder in sorted(entries):
                if total <= self.max_bytes:
                    break
                if any(k == folder.resolve() or folder.resolve() in k.parents for k in keep):
                    continue
                shutil.rmtree(folder, ignore_errors=True) if folder.is_dir() else folder.unlink(missing_ok=True)
                total, removed = total - size, removed + size
            return removed

    def purge(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            for folder in self.root.glob("request-*"):
                try:
                    old = now - folder.stat().st_mtime > self.max_age
                except FileNotFoundError:
                    continue
                if old:
                    shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _entry_size(path: Path) -> tuple[float, int, Path]:
    """(newest modification time, bytes, path) of a file or a folder's files."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    newest, size = 0.0, 0
    for f in files:
        try:
            stat = f.stat()
        except FileNotFoundError:
            continue
        newest, size = max(newest, stat.st_mtime), size + stat.st_size
    return newest, size, path


# ---------------------------------------------------------------------------------------------
# A picture of the music

# A dark-to-bright colour ramp (black, purple, red, orange, pale yellow) for the spectrogram.
_RAMP = np.array([[0, 0, 4], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], dtype=np.float32)
_WAVE_COLOUR = np.array([70, 130, 220], dtype=np.uint8)
_BACKGROUND = np.array([250, 250, 250], dtype=np.uint8)


def music_picture(audio: np.ndarray, sample_rate: int, width: int = 640, height: int = 240,
                  n_fft: int = 1024, dynamic_range_db: float = 80.0) -> np.ndarray:
    """A spectrogram (log frequency 30 Hz..Nyquist, top) over the waveform (bottom) of
    ``audio`` float32 [C, S] (channels are averaged): uint8 RGB [height, width, 3]."""
    mono = np.asarray(audio, dtype=np.float32).reshape(-1, np.shape(audio)[-1]).mean(axis=0)
    spec_h = height * 2 // 3
    wave_h = height - spec_h
    return np.concatenate([_spectrogram(mono, sample_rate, width, spec_h, n_fft, dynamic_range_db),
                           _waveform(mono, width, wave_h)], axis=0)


def _spectrogram(mono: np.ndarray, sample_rate: int, width: int, height: int, n_fft: int,
                 dynamic_range_db: float) -> np.ndarray:
    centres = np.linspace(0, max(len(mono) - 1, 0), width).round().astype(np.int64)
    freqs = np.geomspace(30.0, sample_rate / 2, height)[::-1]  # top row: the highest frequency
    bins = np.clip((freqs / (sample_rate / 2) * (n_fft // 2)).round().astype(np.int64), 0, n_fft // 2)
    db = power_db(mono, centres, n_fft)[bins]  # (H, W)
    level = np.clip((db - (db.max() - dynamic_range_db)) / dynamic_range_db, 0.0, 1.0)
    if db.max() < -100:  # silence: black, not the noise floor stretched to full scale
        level = np.zeros_like(level)
    scaled = level * (len(_RAMP) - 1)
    low = np.floor(scaled).astype(np.int64).clip(0, len(_RAMP) - 2)
    t = (scaled - low)[..., None]
    return (_RAMP[low] * (1 - t) + _RAMP[low + 1] * t).round().astype(np.uint8)


def _waveform(mono: np.ndarray, width: int, height: int) -> np.ndarray:
    edges = np.linspace(0, len(mono), width + 1).round().astype(np.int64)
    lo = np.array([mono[a:b].min() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])])
    hi = np.array([mono[a:b].max() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])])
    peak = max(float(np.abs(mono).max(initial=0.0)), 1e-6)
    centre = (height - 1) / 2
    top = centre - np.clip(hi / peak, -1, 1) * centre  # row of the column's maximum
    bottom = centre - np.clip(lo / peak, -1, 1) * centre
    rows = np.arange(height)[:, None]
    inside = (rows >= np.floor(top)[None]) & (rows <= np.ceil(bottom)[None])
    picture = np.empty((height, width, 3), dtype=np.uint8)
    picture[:] = _BACKGROUND
    picture[inside] = _WAVE_COLOUR
    return picture
