"""Build a training set from a folder of raw footage: shots, exact clips, music stems, filters, a split.

    prepare(src, out, PrepareSettings(...))   ->   out/manifest.jsonl, out/summary.md, out/clips/, out/audio/

Stages (each resumable, see ``stages``): **sources** (probe, content digest, shot cuts with
``shots.detect_cuts``), **plan** (clips of ``clip_seconds`` inside each shot; shorter leftovers kept
from ``min_seconds`` on), **pictures** (motion, black and blank frames, perceptual hashes at ``fps``),
**duplicates** (across sources), **music** (Demucs's ``no_vocals`` stem, its loudness, the vocals'
share of the energy), **clips** (the kept clips re-encoded exactly, see ``cutting``), then the
manifest, the split per source (``group``) and the summary. A clip dropped by a picture filter is
neither separated nor cut: its music scores are null.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .. import media
from ..errors import MediaError, UserInputError
from ..loudness import limit_peak
from ..outputs import write_atomic
from ..shots import DEFAULT_MIN_SHOT_SECONDS
from .clips import DEMUCS_FOLDER, MUSIC_STEM, Clip, split_clips
from .settings import PrepareSettings
from .stages import Runner, Store, key_of

MANIFEST = "manifest.jsonl"
SUMMARY = "summary.md"
_EPS = 1e-6


@dataclass
class Result:
    manifest: Path
    kept: int
    dropped: dict[str, int]
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (source, why)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage


# --- the plan ------------------------------------------------------------------------------
def plan_clips(duration: float, cuts: list[float], clip_seconds: float, min_seconds: float
               ) -> list[tuple[float, float, str | None]]:
    """(start, end, why dropped or None) of every clip: whole clips of ``clip_seconds`` from the start
    of each shot (between successive ``cuts``), then the shot's leftover, kept from ``min_seconds`` on."""
    bounds = [0.0] + [c for c in cuts if _EPS < c < duration - _EPS] + [duration]
    out = []
    for a, b in zip(bounds, bounds[1:]):
        t = a
        while b - t >= clip_seconds - _EPS:
            out.append((round(t, 6), round(t + clip_seconds, 6), None))
            t += clip_seconds
        if b - t > _EPS:
            out.append((round(t, 6), round(b, 6), None if b - t >= min_seconds - _EPS else "shorter than --min-seconds"))
    return out


def clip_id(source_id: str, start: float) -> str:
    return f"{source_id}/t{start:09.3f}"


# --- stage tasks (top level: they run in worker processes and on Ray) ------------------------
def source_task(item: dict) -> dict:
    """Probe a source, digest its content, find its shot cuts."""
    path, out, s = item["path"], item["out"], PrepareSettings(**item["settings"])
    store = Store(out)
    try:
        stat = os.stat(path)
        key = key_of("source", os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
        known = store.get("sources", key)
        if known is None:
            from .cache import file_digest

            try:
                info = media.probe_video(path)
            except MediaError as err:  # remembered too: a rerun does not probe the same broken file again
                known = store.put("sources", key, {"error": str(err)})
            else:
                known = store.put("sources", key, {"digest": file_digest(Path(path)), "duration": info.duration,
                                                   "fps": info.fps, "has_audio": info.has_audio})
        if "error" in known:
            return known
        if s.across_cuts:
            return {**known, "cuts": []}
        cuts_key = key_of("cuts", known["digest"], s.detector, s.threshold, DEFAULT_MIN_SHOT_SECONDS)
        cuts = store.get("cuts", cuts_key)
        if cuts is None:
            from ..shots import detect_cuts

            cuts = store.put("cuts", cuts_key, {"cuts": detect_cuts(path, s.detector, s.threshold)})
        return {**known, "cuts": cuts["cuts"]}
    except MediaError as err:
        return {"error": str(err)}
    except OSError as err:
        return {"error": f"{path}: cannot read ({err.strerror or err})"}  # MediaError's form: path first


def picture_task(item: dict) -> dict:
    """Picture scores and frame hashes of one clip span, sampled at ``fps``."""
    s = PrepareSettings(**item["settings"])
    store = Store(item["out"])
    key = key_of("pictures", item["digest"], item["start"], item["end"], s.fps)
    known = store.get("pictures", key)
    if known is not None:
        return known
    from . import scores

    try:
        frames, _ = media.sample_frames(item["path"], s.fps, start=item["start"], duration=item["end"] - item["start"])
    except MediaError as err:
        return {"error": str(err)}
    thumbs = scores.thumbnails(frames)
    return store.put("pictures", key, {**scores.picture_scores(thumbs), "hashes": scores.frame_hashes(thumbs)})


_SEPARATORS: dict = {}


def _separator(s: PrepareSettings):
    """One Demucs model per process, loaded on first use."""
    from .separation import load_separator

    key = _separator_key(s)
    if key not in _SEPARATORS:
        _SEPARATORS[key] = load_separator(s.demucs_model, s.demucs_repo, key[2])
    return _SEPARATORS[key]


def _separator_key(s: PrepareSettings) -> tuple:
    import torch

    device = s.device if s.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    return s.demucs_model, s.demucs_repo, device


def separator_identity(s: PrepareSettings) -> dict:
    """What the stems depend on: the model's name, and the content of a local model package."""
    if s.separate == "none":
        return {"separate": "none"}
    identity = {"separate": "demucs", "model": s.demucs_model}
    if s.demucs_repo:
        from .cache import file_digest

        packages = sorted(Path(s.demucs_repo).glob(f"{s.demucs_model}*.th"))
        identity["packages"] = [file_digest(p) for p in packages]
    return identity


def music_task(batch: list[dict]) -> list[dict]:
    """Music stems (or the soundtrack itself) and music scores of a batch of clips."""
    s = PrepareSettings(**batch[0]["settings"])
    store = Store(batch[0]["out"])
    from . import scores

    results: list = [None] * len(batch)
    todo = []
    for i, item in enumerate(batch):
        key = key_of("music", item["digest"], item["start"], item["end"], item["identity"])
        known = store.get("music", key)
        if known is not None and (s.separate == "none" or (Path(item["out"]) / known["audio"]).is_file()):
            results[i] = known
        else:
            todo.append((i, key))
    if not todo:
        return results
    if s.separate == "none":
        for i, key in todo:
            item = batch[i]
            try:
                audio = media.decode_audio(item["path"], 48000, 2, start=item["start"], duration=item["end"] - item["start"])
            except MediaError as err:
                results[i] = {"error": str(err)}
                continue
            results[i] = store.put("music", key, {"audio": None, "loudness": _finite(scores.music_loudness(audio, 48000)),
                                                   "vocal_share": None})
        return results
    separator = _separator(s)
    decoded = []
    for i, key in todo:
        item = batch[i]
        try:
            audio = media.decode_audio(item["path"], separator.sample_rate, separator.channels,
                                       start=item["start"], duration=item["end"] - item["start"])
        except MediaError as err:
            results[i] = {"error": str(err)}
            continue
        decoded.append((i, key, audio))
    stems = separator.separate_batch([a for _, _, a in decoded]) if decoded else []
    for (i, key, _), (music, vocals) in zip(decoded, stems):
        item = batch[i]
        relative = f"audio/{DEMUCS_FOLDER}/{item['id']}/{MUSIC_STEM}"
        target = Path(item["out"]) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        # Demucs's stems can exceed full scale by a little: scaled (never clipped) into the WAV (atomic).
        media.write_wav(target, limit_peak(music), separator.sample_rate)
        results[i] = store.put("music", key, {
            "audio": relative, "loudness": _finite(scores.music_loudness(music, separator.sample_rate)),
            "vocal_share": scores.vocal_share(music, vocals)})
    return results


def clip_task(item: dict) -> dict:
    """The clip's exact video file (re-encoded)."""
    s = PrepareSettings(**item["settings"])
    store = Store(item["out"])
    relative = f"clips/{item['id']}.mp4"
    key = key_of("clips", item["digest"], item["start"], item["end"], s.crf, s.preset)
    known = store.get("clips", key)
    if known is not None and (Path(item["out"]) / relative).is_file():
        return known
    from .cutting import cut_clip

    target = Path(item["out"]) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        cut_clip(item["path"], item["start"], item["end"], target, crf=s.crf, preset=s.preset)
    except MediaError as err:
        return {"error": str(err)}
    return store.put("clips", key, {"video": relative})


def _finite(value: float) -> float | None:
    """JSON has no -inf: silence is null loudness."""
    return value if value == value and abs(value) != float("inf") else None


# --- the whole preparation -----------------------------------------------------------------
def discover(src: Path) -> list[tuple[str, Path]]:
    """(source id, path) of every video under ``src`` (or ``src`` itself), sorted by id."""
    if src.is_file():
        return [(src.stem, src)]
    return [(p.relative_to(src).with_suffix("").as_posix(), p) for p in media.find_videos(src, recursive=True)]


def check_folders(src: Path, out: Path) -> None:
    if not src.exists():
        raise UserInputError(f"{src}: no such file or folder")
    a, b = src.resolve(), out.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise UserInputError(f"{out}: the output folder must be outside {src} (and not hold it): "
                             "inputs are never overwritten, and clips written there would be read as sources")


def prepare(src: str | os.PathLike, out: str | os.PathLike, settings: PrepareSettings | None = None,
            workers: int = 1, ray_address: str | None = None, show_progress: bool = True,
            log=None, separator=None, threads: int | None = None) -> Result:
    """Prepare ``src`` (a folder of videos, or one video) into ``out``; see the module docstring.

    ``separator``: an object with Demucs's ``Separator`` interface (``name``, ``sample_rate``,
    ``channels``, ``separate_batch``) used instead of loading ``settings.demucs_model``; in this
    process only (workers 1, no Ray). Its ``name`` keys its stems in the resumable results.
    ``threads``: torch's CPU threads in each worker process (default: the cores shared among them).
    """
    s = settings or PrepareSettings()
    if separator is not None:
        if workers > 1 or ray_address:
            raise ValueError("a separator object runs in this process only (workers=1, no Ray)")
        s = replace(s, separate="demucs", demucs_model=f"object:{separator.name}", demucs_repo=None)
        _SEPARATORS[_separator_key(s)] = separator
    try:
        s.validate()
    except ValueError as err:
        raise UserInputError(str(err)) from None
    src, out = Path(src).expanduser(), Path(out).expanduser()
    check_folders(src, out)
    log = log or (lambda text: print(text, file=sys.stderr))
    sources = discover(src)
    if not sources:
        raise UserInputError(f"{src}: no videos found (looked for {', '.join(sorted(media.VIDEO_EXTENSIONS))})")
    out.mkdir(parents=True, exist_ok=True)
    base = {"out": str(out), "settings": asdict(s)}
    runner = Runner(workers, ray_address, show_progress, threads)
    try:
        return _prepare(sources, out, s, base, runner, log)
    finally:
        runner.close()


def _prepare(sources, out: Path, s: PrepareSettings, base: dict, runner: Runner, log) -> Result:
    from . import scores as score_fns
    from .summary import dropped_counts, write_summary

    found = runner.map(source_task, [{**base, "path": str(p)} for _, p in sources], "sources", unit="source")
    unreadable, rows = [], []
    for (source_id, path), info in zip(sources, found):
        if "error" in info:
            unreadable.append((str(path), info["error"]))
            log(f"skipping {info['error']}")  # the error names the file
            continue
        caption = _caption(path)
        for start, end, why in plan_clips(info["duration"], info["cuts"], s.clip_seconds, s.min_seconds):
            rows.append({"id": clip_id(source_id, start), "source": source_id, "source_path": str(path),
                         "group": source_id, "start": start, "end": end, "caption": caption,
                         "digest": info["digest"], "has_audio": info["has_audio"], "scores": {}, "dropped": why})

    def item(row: dict) -> dict:
        return {**base, "id": row["id"], "path": row["source_path"], "digest": row["digest"],
                "start": row["start"], "end": row["end"]}

    def alive() -> list[dict]:
        return [r for r in rows if r["dropped"] is None]

    # pictures: cheap (fps frames a second), and they decide what is worth separating and cutting
    todo = alive()
    for row, got in zip(todo, runner.map(picture_task, [item(r) for r in todo], "pictures")):
        if "error" in got:
            row["dropped"] = f"unreadable: {got['error']}"
            continue
        row["hashes"] = got.pop("hashes")
        row["scores"].update(got)
        row["dropped"] = _picture_verdict(got, s)
    todo = alive()
    duplicates = score_fns.duplicate_scores([(r["id"], r["source"], r["hashes"]) for r in todo], s.hash_distance)
    for row in todo:
        share, of = duplicates[row["id"]]
        row["scores"]["duplicate_share"], row["duplicate_of"] = share, of
        if share > s.max_duplicate_share:
            row["dropped"] = f"near-duplicate of {of}"

    # music: Demucs's stems (batched), loudness and the vocals' share
    todo = [r for r in alive() if r["has_audio"]]
    for row in alive():
        if not row["has_audio"]:
            row["dropped"] = "no soundtrack"
    identity = separator_identity(s)
    size = s.demucs_batch or (8 if _cuda(s) else 1)
    batches = [todo[i:i + size] for i in range(0, len(todo), size)]
    results = runner.map(music_task, [[{**item(r), "identity": identity} for r in b] for b in batches], "music",
                         weights=[len(b) for b in batches])
    for batch, got in zip(batches, results):
        for row, music in zip(batch, got):
            if "error" in music:
                row["dropped"] = f"unreadable: {music['error']}"
                continue
            row["audio"] = music["audio"]
            row["scores"].update(loudness=music["loudness"], vocal_share=music["vocal_share"])
            row["dropped"] = _music_verdict(music, s)

    # the kept clips, exact
    todo = alive()
    for row, got in zip(todo, runner.map(clip_task, [item(r) for r in todo], "clips")):
        if "error" in got:
            row["dropped"] = f"unreadable: {got['error']}"
            continue
        row["video"] = got["video"]

    kept = alive()
    split = {}
    if kept:
        clips = [Clip(r["id"], Path(r["video"]), Path(r["video"]), group=r["group"]) for r in kept]
        try:
            split = split_clips(clips, s.val_fraction, s.test_fraction, s.split_seed)
        except UserInputError as err:  # a small set: still a dataset, for training without held-out clips
            log(f"split: {err}; every kept clip is in training (lower --val-fraction / --test-fraction, or add sources)")
            split = {"training": sorted(c.id for c in clips), "validation": [], "test": []}
    where = {i: name for name, ids in split.items() for i in ids}
    manifest = out / MANIFEST
    lines = [json.dumps(_manifest_row(r, where.get(r["id"]))) for r in rows]
    write_atomic(manifest, "\n".join(lines) + ("\n" if lines else ""))
    write_summary(out, rows, s, unreadable, split)
    return Result(manifest, len(kept), dropped_counts(rows), unreadable, dict(runner.seconds))


def _picture_verdict(got: dict, s: PrepareSettings) -> str | None:
    if got["black_share"] > s.max_black_share:
        return "black picture"
    if got["blank_share"] > s.max_blank_share:
        return "blank picture"
    if got["motion"] < s.min_motion:
        return "static picture"
    return None


def _music_verdict(music: dict, s: PrepareSettings) -> str | None:
    if music["loudness"] is None or music["loudness"] < s.min_loudness:
        return "music too quiet"
    if music["vocal_share"] is not None and music["vocal_share"] > s.max_vocal_share:
        return "speech or singing"
    return None


def _manifest_row(row: dict, split: str | None) -> dict:
    """One manifest line: what training reads (id, video, audio, caption, group, kept) and the rest."""
    keep = row["dropped"] is None
    out = {"id": row["id"], "video": row.get("video"), **({"audio": row["audio"]} if row.get("audio") else {}),
           "caption": row["caption"], "group": row["group"], "source": row["source"],
           "source_path": row["source_path"], "start": row["start"], "end": row["end"],
           "scores": dict(sorted(row["scores"].items())), "kept": keep, "dropped": row["dropped"], "split": split}
    if row.get("duplicate_of") and not keep:
        out["duplicate_of"] = row["duplicate_of"]
    return out


def _caption(path: Path) -> str | None:
    """A source's caption: the first line of ``<source>.txt`` beside it, if there is one."""
    sidecar = path.with_suffix(".txt")
    if sidecar.is_file():
        lines = [line.strip() for line in sidecar.read_text(errors="replace").splitlines() if line.strip()]
        return lines[0] if lines else None
    return None


def _cuda(s: PrepareSettings) -> bool:
    if s.separate != "demucs" or s.device == "cpu":
        return False
    import torch

    return torch.cuda.is_available()
