"""Clips: find (video, music, caption) pairs in one of four layouts, and split them.

Layouts (``data.layout``):
- ``videos_with_audio``: each video's own soundtrack is its target music;
- ``videos_and_wavs``: ``videos/<stem>.<ext>`` + ``audio/<stem>.wav`` (the thesis layout);
- ``demucs``: ``videos/<stem>.<ext>`` + ``audio/htdemucs/<stem>/no_vocals.wav`` (Demucs output);
- ``manifest``: a CSV or JSONL file with ``video``, optional ``audio``, ``caption``, ``id``, ``group``
  and ``kept`` columns (what ``prepare_dataset.py`` writes; rows with ``kept`` false are left out).

A pair whose files are missing is reported and skipped (``Skipped``), never silently dropped. Clips
that share a ``group`` (e.g. cut from one long source video) always land in the same split.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserInputError
from ..media import VIDEO_EXTENSIONS, find_videos
from ..outputs import write_atomic
from .config import DataConfig

SPLIT_NAME = "split.json"
# The demucs layout, as Demucs's own CLI writes it: <audio>/htdemucs/<stem>/no_vocals.wav
DEMUCS_FOLDER, MUSIC_STEM = "htdemucs", "no_vocals.wav"


@dataclass(frozen=True)
class Clip:
    """One training pair. ``id`` is unique and stable (the path relative to the data root)."""

    id: str
    video: Path
    audio: Path            # the music: the video itself for videos_with_audio
    caption: str | None = None
    group: str | None = None  # clips of one group (one source video) never span two splits


@dataclass(frozen=True)
class Skipped:
    what: str              # the file or clip id
    why: str


def find_clips(config: DataConfig) -> tuple[list[Clip], list[Skipped]]:
    """All pairs of the configured layout, sorted by id, and the ones that had to be skipped."""
    if config.layout == "manifest":
        return _from_manifest(Path(config.manifest))
    videos_dir = _existing_dir(config.videos, "data.videos")
    videos = find_videos(videos_dir, config.recursive)
    if not videos:
        raise UserInputError(f"{videos_dir}: no videos found (looked for {', '.join(sorted(VIDEO_EXTENSIONS))})")
    clips, skipped = [], []
    audio_dir = _existing_dir(config.audio, "data.audio") if config.layout != "videos_with_audio" else None
    for video in videos:
        clip_id = video.relative_to(videos_dir).with_suffix("").as_posix()
        if config.layout == "videos_with_audio":
            audio = video
        elif config.layout == "videos_and_wavs":
            audio = audio_dir / f"{clip_id}.wav"
        else:  # demucs: <audio>/htdemucs/<stem>/no_vocals.wav (or <audio> is the htdemucs folder itself)
            root = audio_dir if audio_dir.name == DEMUCS_FOLDER else audio_dir / DEMUCS_FOLDER
            audio = root / video.stem / MUSIC_STEM
        if not audio.is_file():
            skipped.append(Skipped(str(video), f"no music file {audio}"))
            continue
        clips.append(Clip(clip_id, video, audio))
    return clips, skipped


def _existing_dir(path: str | None, key: str) -> Path:
    folder = Path(path).expanduser() if path else None
    if folder is None or not folder.is_dir():
        raise UserInputError(f"{key}: {path} is not a folder")
    return folder


def _from_manifest(path: Path) -> tuple[list[Clip], list[Skipped]]:
    if not path.is_file():
        raise UserInputError(f"{path}: manifest not found")
    rows = _read_manifest(path)
    clips, skipped, seen = [], [], set()
    for line, row in rows:
        where = f"{path}:{line}"
        if _is_false(row.get("kept", True)):
            continue  # dropped by dataset preparation; the manifest says why
        if not row.get("video"):
            raise UserInputError(f"{where}: no 'video' value")
        video = (path.parent / row["video"]).expanduser()
        audio = (path.parent / row["audio"]).expanduser() if row.get("audio") else video
        missing = next((p for p in (video, audio) if not p.is_file()), None)
        if missing is not None:
            skipped.append(Skipped(where, f"file not found: {missing}"))
            continue
        clip_id = str(row.get("id") or Path(row["video"]).with_suffix("").as_posix())
        if clip_id in seen:
            raise UserInputError(f"{where}: clip {clip_id} is listed twice")
        seen.add(clip_id)
        group = row.get("group")
        clips.append(Clip(clip_id, video, audio, row.get("caption") or None, str(group) if group else None))
    if not rows:
        raise UserInputError(f"{path}: the manifest lists no clips")
    return sorted(clips, key=lambda c: c.id), skipped


def _is_false(value) -> bool:
    """``kept`` as JSON writes it (false) or as a CSV cell ("false", "0", "no")."""
    return value is False or (isinstance(value, str) and value.strip().lower() in ("false", "0", "no"))


def _read_manifest(path: Path) -> list[tuple[int, dict]]:
    """(line number, row) pairs of a CSV (with a header) or JSONL manifest."""
    text = path.read_text()
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise UserInputError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        return rows
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "video" not in reader.fieldnames:
        raise UserInputError(f"{path}: a CSV manifest needs a header with a 'video' column")
    return [(number, row) for number, row in enumerate(reader, 2)]


def split_clips(clips: list[Clip], val_fraction: float, test_fraction: float, seed: int) -> dict[str, list[str]]:
    """A seeded train/validation/test split of clip ids (at least one training clip).

    Whole groups are split: the groups, in a seeded order, fill validation up to its share of the
    clips, then test, and the rest is training, so clips of one source never leak across splits.
    A clip without a group is a group of its own (then this is a plain per-clip split).
    """
    groups: dict[str, list[str]] = {}
    for clip in clips:
        groups.setdefault(clip.group if clip.group is not None else f"\0{clip.id}", []).append(clip.id)
    names = sorted(groups)
    random.Random(seed).shuffle(names)
    total = sum(len(ids) for ids in groups.values())
    n_val, n_test = round(total * val_fraction), round(total * test_fraction)
    split = {"validation": [], "test": [], "training": []}
    for name in names:
        part = "validation" if len(split["validation"]) < n_val else "test" if len(split["test"]) < n_test else "training"
        split[part] += groups[name]
    if not split["training"]:
        what = f"{total} usable clips" + (f" in {len(groups)} groups" if len(groups) < total else "")
        raise UserInputError(f"only {what}: too few for the validation and test fractions")
    return {name: sorted(ids) for name, ids in split.items()}


def load_or_make_split(output_dir: Path, clips: list[Clip], config: DataConfig) -> tuple[dict[str, list[str]], list[str]]:
    """The split saved in ``output_dir`` (reused on resume), or a new one saved there.

    Returns the split, restricted to the clips that exist now, and notes about the difference.
    """
    path = output_dir / SPLIT_NAME
    notes = []
    if path.is_file():
        split = json.loads(path.read_text())
        available = {c.id for c in clips}
        gone = sorted(i for part in split.values() for i in part if i not in available)
        new = sorted(available - {i for part in split.values() for i in part})
        if gone:
            notes.append(f"{len(gone)} clips of the saved split are unusable now (e.g. {gone[0]}); left out")
        if new:
            notes.append(f"{len(new)} clips are not in the saved split (e.g. {new[0]}); left out to keep the split")
        split = {name: [i for i in ids if i in available] for name, ids in split.items()}
    else:
        split = split_clips(clips, config.val_fraction, config.test_fraction, config.split_seed)
        write_atomic(path, json.dumps(split, indent=1) + "\n")  # a run killed here leaves no half a split
    if not split["training"]:
        raise UserInputError(f"{path}: no usable training clips left")
    return split, notes
