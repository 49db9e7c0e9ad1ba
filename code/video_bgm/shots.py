"""Shot cuts of a video: detected with PySceneDetect, or read from an editor's marker file.

One definition for everything that needs cuts (dataset preparation, scene-aware generation,
the beat-on-cut measures). A cut is the time in seconds (from the start of the video stream) of
the first frame of a new shot; a video with one shot has no cuts.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import MediaError

DETECTORS = ("content", "adaptive")
DEFAULT_DETECTOR = "content"
# PySceneDetect's own defaults: ContentDetector's threshold and AdaptiveDetector's adaptive_threshold.
DEFAULT_THRESHOLDS = {"content": 27.0, "adaptive": 3.0}
DEFAULT_MIN_SHOT_SECONDS = 0.5  # a flash or a fade is not a shot


def detect_cuts(path, detector: str = DEFAULT_DETECTOR, threshold: float | None = None,
                min_shot_seconds: float = DEFAULT_MIN_SHOT_SECONDS) -> list[float]:
    """The times (s) of the shot cuts in the video at ``path``, ascending.

    detector: "content" (a jump in HSV content between frames) or "adaptive" (a jump relative to its
    neighbours; fewer false cuts in fast motion). threshold: the detector's own threshold (None: its
    default). The frames are decoded with PyAV, the same decoder as the rest of the media layer.
    """
    if detector not in DETECTORS:
        raise ValueError(f"unknown shot detector {detector!r}: choose one of {', '.join(DETECTORS)}")
    from .media import probe_video  # PyAV: here, so that importing the detectors' names stays light

    info = probe_video(path)  # a broken or missing file is a MediaError before PySceneDetect sees it
    from scenedetect import AdaptiveDetector, ContentDetector, SceneManager, open_video

    min_frames = max(1, round(min_shot_seconds * info.fps))
    value = DEFAULT_THRESHOLDS[detector] if threshold is None else float(threshold)
    if detector == "content":
        found = ContentDetector(threshold=value, min_scene_len=min_frames)
    else:
        found = AdaptiveDetector(adaptive_threshold=value, min_scene_len=min_frames)
    try:
        # suppress_output: PySceneDetect would otherwise turn on FFmpeg's own logging for the whole process
        # (every later encode printing x264's settings and AAC's statistics).
        video = open_video(os.fspath(path), backend="pyav", suppress_output=True)
        manager = SceneManager()
        manager.add_detector(found)
        manager.detect_scenes(video)
        scenes = manager.get_scene_list(start_in_scene=True)
    except MediaError:
        raise
    except Exception as err:  # PySceneDetect/PyAV errors on a file that probed fine
        raise MediaError(os.fspath(path), f"shot detection failed: {err}") from err
    return [round(float(start.seconds), 6) for start, _ in scenes[1:]]


def read_cuts_file(path, duration: float | None = None) -> list[float]:
    """Cut times from a text file: one time in seconds per line (as editors export markers).

    Blank lines and lines starting with ``#`` are skipped; ``HH:MM:SS(.ms)`` and ``MM:SS`` are accepted.
    Times are sorted and de-duplicated; a time that is negative or (when ``duration`` is given) past the
    end is an error naming the file and the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MediaError(str(path), "cuts file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise MediaError(str(path), f"cannot read the cuts file: {err}") from None
    cuts = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip().rstrip(",")
        if not line:
            continue
        try:
            t = _seconds(line)
        except ValueError:
            raise MediaError(str(path), f"line {number}: {line!r} is not a time in seconds") from None
        if t < 0 or (duration is not None and t > duration):
            where = "negative" if t < 0 else f"past the video's end ({duration:.2f} s)"
            raise MediaError(str(path), f"line {number}: cut at {t:g} s is {where}")
        if t > 0:
            cuts.add(round(t, 6))
    return sorted(cuts)


def _seconds(text: str) -> float:
    parts = text.split(":")
    if len(parts) > 3:
        raise ValueError(text)
    total = 0.0
    for part in parts:
        total = total * 60 + float(part)
    return total
