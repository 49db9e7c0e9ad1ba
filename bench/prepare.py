#!/usr/bin/env python
"""Benchmark: dataset preparation of one long source, per stage, against the source's duration.

A synthetic source (shots of 20 s with textured, moving pictures and film grain, music; 720p,
30 fps) is written once into --work, then prepared with Demucs at its real size (the released
htdemucs architecture, 41.98 M parameters, random weights: the speed is the same as trained).
Also measured: the two ways to make clips exact, re-encoded files against lazy (source, start,
end) spans read from the source, for their size and the time to read a clip's frames back.

    python bench/prepare.py                     # 10 minutes of 720p, as in the README
    python bench/prepare.py --minutes 1         # a quick look

Prints the seconds of each stage and its ratio to the source's duration (1.0x: real time).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

import torch


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="source length (default 10)")
    p.add_argument("--size", default="1280x720", help="source frame size (default 1280x720)")
    p.add_argument("--fps", type=float, default=30.0, help="source frame rate (default 30)")
    p.add_argument("--work", default="bench-prepare", help="folder for the source and the output (kept)")
    p.add_argument("--separate", default="demucs", choices=["demucs", "none"])
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = p.parse_args(argv)

    from video_bgm import media
    from video_bgm.data.prepare import prepare
    from video_bgm.data.separation import random_htdemucs, save_demucs_package
    from video_bgm.data.settings import PrepareSettings
    from video_bgm.synthetic import Shot, write_footage

    width, height = (int(v) for v in args.size.split("x"))
    work = Path(args.work)
    src = work / "src"
    source = src / f"source-{args.minutes:g}min-{args.size}.mp4"
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device: {device} ({torch.cuda.get_device_name() if device == 'cuda' else platform.machine()}), "
          f"{os.cpu_count()} cores, load average {load:.2f}, torch {torch.__version__}")
    if not source.is_file():
        src.mkdir(parents=True, exist_ok=True)
        shots = [Shot(20.0, seed=i) for i in range(max(1, round(args.minutes * 3)))]
        print(f"writing the source: {len(shots)} shots of 20 s, {width}x{height} at {args.fps:g} fps ...", flush=True)
        start = time.perf_counter()
        write_footage(source, shots, fps=args.fps, size=(width, height), grain=6)
        print(f"  {time.perf_counter() - start:.0f} s")
    duration = media.probe_video(source).duration

    repo = work / "demucs"
    if args.separate == "demucs" and not (repo / "random00.th").is_file():
        save_demucs_package(random_htdemucs(0), repo, "random00")
    out = work / f"out-{args.separate}-{args.workers}"
    shutil.rmtree(out, ignore_errors=True)  # a fresh run: the stage results of an earlier one would be reused
    settings = PrepareSettings(separate=args.separate, demucs_model="random00", demucs_repo=str(repo), device=args.device,
                               min_loudness=-70.0, max_vocal_share=1.0)  # random stems: keep every clip
    print(f"preparing {duration:.0f} s of source ({args.separate}, {args.workers} worker(s)) ...", flush=True)
    start = time.perf_counter()
    result = prepare(src, out, settings, workers=args.workers, show_progress=False)
    total = time.perf_counter() - start

    print()
    print(f"{'stage':12s} {'seconds':>8s} {'x real time':>12s}")
    for stage, seconds in result.seconds.items():
        print(f"{stage:12s} {seconds:8.1f} {seconds / duration:11.3f}x")
    print(f"{'whole':12s} {total:8.1f} {total / duration:11.3f}x   ({result.kept} clips kept of "
          f"{result.kept + sum(result.dropped.values())})")

    # exact clips: re-encoded files (what prepare writes) against lazy spans of the source
    clips = sorted((out / "clips").rglob("*.mp4"))
    if clips:
        rows = {r["video"]: r for r in map(__import__("json").loads, (out / "manifest.jsonl").read_text().splitlines())
                if r["kept"]}
        clip_bytes = sum(c.stat().st_size for c in clips)
        seconds = sum(r["end"] - r["start"] for r in rows.values())
        first = rows[clips[0].relative_to(out).as_posix()]
        read_clip = _best(lambda: media.sample_frames(clips[0], 1.0))
        read_span = _best(lambda: media.sample_frames(source, 1.0, start=first["start"],
                                                      duration=first["end"] - first["start"]))
        print()
        print(f"re-encoded clips: {clip_bytes / 2**20:.0f} MiB for {seconds:.0f} s, {clip_bytes / source.stat().st_size:.2f}x "
              f"the source's size; cutting took {result.seconds.get('clips', 0):.1f} s "
              f"({result.seconds.get('clips', 0) / total:.0%} of the whole)")
        print(f"lazy spans:       0 bytes, 0 s to make; reading a 30 s clip's frames at 1 fps: span {read_span:.2f} s, "
              f"clip file {read_clip:.2f} s")


def _best(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


if __name__ == "__main__":
    main()
