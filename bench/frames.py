#!/usr/bin/env python
"""Benchmark: frame sampling through decord against PyAV alone, on the same clip and times.

    python bench/frames.py                      # 1280x720 H.264, 60 s at 25 fps; 1 and 8 frames per second
    python bench/frames.py --seconds 20 --rounds 3

media.sample_frames reads frames with PyAV on every platform. decord (the design card's reader; wheels
for x86_64 Linux and Windows only) was dropped because this benchmark found it no faster; to measure
again, `pip install decord` and run this: it reads the same frames through decord's VideoReader as
the product once did, and prints, per sampling rate, the best time of each path over rounds that
alternate them, and decord / PyAV: below 1, decord is faster. Absolute seconds drift on shared
machines; the ratio is measured in one run.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from video_bgm import media
from video_bgm.synthetic import write_test_video

BATCH = 32  # frames per get_batch call: bounds the extra memory to one chunk


def frames_decord(path: str, info: media.VideoInfo, times: np.ndarray) -> torch.Tensor:
    """The frames media.sample_frames returns, read with decord (it rotates MP4/MOV frames itself)."""
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    reader = decord.VideoReader(path, ctx=decord.cpu(0))
    # Index array, not a slice: with a slice decord would decode the whole video.
    stamps = reader.get_frame_timestamp(np.arange(len(reader))).astype(np.float64)
    indices = media.frame_indices(stamps[:, 0], times)
    out = torch.empty((len(times), info.height, info.width, 3), dtype=torch.uint8)
    for lo in range(0, len(indices), BATCH):
        out[lo:lo + BATCH] = torch.from_numpy(reader.get_batch(indices[lo:lo + BATCH].tolist()).asnumpy())
    return out


def best_time(fn, rounds: list[float]) -> None:
    start = time.perf_counter()
    fn()
    rounds.append(time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="clip length (default 60)")
    p.add_argument("--size", default="1280x720", help="frame size WxH (default 1280x720)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each path counts (default 3)")
    p.add_argument("--fps", type=float, action="append", default=None, help="sampling rates (default 1 and 8)")
    args = p.parse_args()
    width, height = map(int, args.size.split("x"))
    try:
        import decord  # noqa: F401
    except ImportError:
        raise SystemExit("decord is not installed here: pip install decord (x86_64 Linux or Windows) to compare")
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_test_video(Path(tmp) / "clip.mp4", duration=args.seconds, fps=25, size=(width, height))
        info = media.probe_video(clip)
        print(f"{platform.machine()} {platform.system()}, {args.size} H.264 {args.seconds:g} s at 25 fps, "
              f"best of {args.rounds} alternating rounds")
        print(f"{'fps':>5} {'frames':>7} {'decord s':>9} {'PyAV s':>8} {'decord / PyAV':>14}")
        for fps in args.fps or [1.0, 8.0]:
            times = media.frame_times(info.duration, fps)
            by_decord, by_pyav = [], []
            for _ in range(args.rounds):
                best_time(lambda: frames_decord(clip, info, times), by_decord)
                best_time(lambda: media._frames_pyav(clip, info, times), by_pyav)
            same = (frames_decord(clip, info, times).int() - media._frames_pyav(clip, info, times).int()).abs().max()
            assert same <= 2, f"decord and PyAV frames differ by {same} levels"  # two FFmpeg builds, same frames
            d, a = min(by_decord), min(by_pyav)
            print(f"{fps:>5g} {len(times):>7} {d:>9.2f} {a:>8.2f} {d / a:>13.2f}x")


if __name__ == "__main__":
    main()
