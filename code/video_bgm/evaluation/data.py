"""What to evaluate on: reference clips (video + music + caption) and folders of generated music.

``--data`` / ``--reference`` accept:
- a **folder of videos**: every video (any depth), its own soundtrack is the reference music;
- a **folder of audio files** (score-only runs): the reference music, without videos;
- a **training run's output dir** (it holds ``split.json`` and ``training_config.yaml``) with a
  split name (default ``test``): the clips of that split, found with the run's own data section;
- a **manifest** (CSV or JSONL, ``video``, ``audio``, ``caption`` columns, as in training).

Generated music (``--generated``): a folder of audio (or video) files named ``<id>.<ext>`` or
``<id>.take<k>.<ext>``, where ``<id>`` is the reference clip's id (its path relative to the data
folder, without extension); or a folder of such folders, one per system (what evaluate.py writes
under ``<out>/generated``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import media
from ..data.clips import SPLIT_NAME, Clip, Skipped, find_clips
from ..data.config import DataConfig, load_run_data_config
from ..errors import MediaError, UserInputError
from ..media import VIDEO_EXTENSIONS

AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac"}
_TAKE = re.compile(r"^(?P<id>.+?)(?:\.take(?P<take>\d+))?$")


@dataclass
class ReferenceSet:
    clips: list[Clip]
    source: dict                        # what was read, for metrics.json
    skipped: list[Skipped] = field(default_factory=list)
    training_log: Path | None = None    # the run's metrics.jsonl
    segment_seconds: float | None = None  # the run's training segment length

    def with_video(self) -> list[Clip]:
        return [c for c in self.clips if has_video(c)]

    def captions(self) -> dict[str, str]:
        return {c.id: c.caption for c in self.clips if c.caption}


def has_video(clip: Clip) -> bool:
    return clip.video.suffix.lower() in VIDEO_EXTENSIONS


def load_reference(data: str, split: str | None = None) -> ReferenceSet:
    """Reference clips from a folder, a training run's split, or a manifest (module docstring)."""
    path = Path(data).expanduser()
    if path.is_file():
        clips, skipped = find_clips(DataConfig(layout="manifest", manifest=str(path)))
        return _checked(ReferenceSet(clips, {"kind": "manifest", "path": str(path)}, skipped), data)
    if not path.is_dir():
        raise UserInputError(f"{data}: no such file or folder")
    if (path / SPLIT_NAME).is_file():
        return _from_run(path, split or "test")
    if split:
        raise UserInputError(f"--split {split}: {data} is not a training run (no {SPLIT_NAME})")
    videos = [p for p in _files(path) if p.suffix.lower() in VIDEO_EXTENSIONS]
    if videos:
        clips, skipped = find_clips(DataConfig(layout="videos_with_audio", videos=str(path)))
        return _checked(ReferenceSet(clips, {"kind": "videos", "path": str(path)}, skipped), data)
    audio = [p for p in _files(path) if p.suffix.lower() in AUDIO_EXTENSIONS]
    clips = [Clip(p.relative_to(path).with_suffix("").as_posix(), p, p) for p in audio]
    return _checked(ReferenceSet(clips, {"kind": "audio", "path": str(path)}), data)


def _from_run(run: Path, split: str) -> ReferenceSet:
    saved = json.loads((run / SPLIT_NAME).read_text())
    if split not in saved:
        raise UserInputError(f"--split {split}: {run / SPLIT_NAME} has {', '.join(saved)}")
    config_path = run / "training_config.yaml"
    if not config_path.is_file():
        raise UserInputError(f"{run}: no training_config.yaml to find the data with")
    try:
        data = load_run_data_config(config_path)
    except ValueError as err:
        raise UserInputError(f"{config_path}: {err}") from None
    clips, skipped = find_clips(data)
    wanted = set(saved[split])
    chosen = [c for c in clips if c.id in wanted]
    missing = sorted(wanted - {c.id for c in chosen})
    skipped += [Skipped(i, f"in {split} of {run / SPLIT_NAME} but not found now") for i in missing]
    log = run / "metrics.jsonl"
    return _checked(ReferenceSet(chosen, {"kind": "run", "path": str(run), "split": split}, skipped,
                                 log if log.is_file() else None, data.segment_seconds), f"{run} ({split})")


def _checked(reference: ReferenceSet, what: str) -> ReferenceSet:
    """The clips whose video can be used (probed now, before any model loads: one skip line each,
    not one per system later); none left is one line naming the first reason."""
    usable = []
    for clip in reference.clips:
        try:
            if has_video(clip):
                media.probe_video(clip.video)
        except MediaError as err:
            reference.skipped.append(Skipped(clip.id, str(err)))
            continue
        usable.append(clip)
    reference.clips = usable
    if not reference.clips:
        reason = f" ({reference.skipped[-1].why})" if reference.skipped else ""
        raise UserInputError(f"{what}: no clips to evaluate on{reason}")
    return reference


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def parse_take(relative: str) -> tuple[str, int]:
    """``"a/clip01.take2"`` -> ("a/clip01", 2); without ``.take<k>`` the take is 0."""
    match = _TAKE.match(relative)
    return match["id"], int(match["take"] or 0)


def read_generated(folder: str | Path) -> dict[str, dict[str, list[Path]]]:
    """{system: {clip id: [take 0, take 1, ...]}}: one system per folder holding music files
    directly, named after the folder; a folder of such folders gives one system each."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise UserInputError(f"--generated {folder}: not a folder")
    usable = AUDIO_EXTENSIONS | VIDEO_EXTENSIONS
    direct = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in usable]
    if direct:
        systems = {root.name or "generated": root}
    else:
        systems = {d.name: d for d in sorted(root.iterdir()) if d.is_dir()
                   and any(p.suffix.lower() in usable for p in _files(d))}
    if not systems:
        raise UserInputError(f"--generated {folder}: no audio or video files")
    out = {}
    for name, system_dir in systems.items():
        pieces: dict[str, dict[int, Path]] = {}
        for p in _files(system_dir):
            if p.suffix.lower() in usable:
                clip_id, take = parse_take(p.relative_to(system_dir).with_suffix("").as_posix())
                pieces.setdefault(clip_id, {})[take] = p
        out[name] = {i: [takes[k] for k in sorted(takes)] for i, takes in sorted(pieces.items())}
    return out
