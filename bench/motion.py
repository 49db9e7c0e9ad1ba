#!/usr/bin/env python
"""Benchmark: what the motion channels (model.motion) cost in frame decoding.

    python bench/motion.py                      # 1280x720 H.264, 30 s at 25 fps; 1 and 2 frames per second
    python bench/motion.py --seconds 10 --rounds 5 --size 1920x1080

media.sample_frames decodes every frame up to the last sampled one (H.264 cannot skip) but
converts only the sampled ones to RGB; media.sample_frames_and_motion also turns every decoded
frame into a 64-pixel-wide grey thumbnail and accumulates the frame differences (motion.py).
This prints, per sampling rate, the best time of each over rounds that alternate them, and
with motion / without: the extra decoding cost of the option. Absolute seconds drift on shared
machines; the ratio is measured in one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from video_bgm import media


def write_panning_clip(path: Path, seconds: float, fps: int, width: int, height: int) -> str:
    """H.264 of a detailed picture panning sideways: decoding it costs about what real footage
    costs (a flat synthetic picture decodes many times faster and would inflate the ratio)."""
    import av

    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, size=(height // 8 + 1, (width + 4 * fps * int(seconds)) // 8 + 1, 3), dtype=np.uint8)
    scene = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)  # 8-px blocks: detail the encoder keeps
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(round(seconds * fps)):
            x = 4 * i  # 4 px per frame
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(scene[:height, x:x + width]), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return str(path)


def timed(fn, rounds: list[float]) -> None:
    start = time.perf_counter()
    fn()
    rounds.append(time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0, help="clip length (default 30)")
    p.add_argument("--size", default="1280x720", help="frame size WxH (default 1280x720)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each counts (default 3)")
    p.add_argument("--fps", type=float, action="append", default=None, help="sampling rates (default 1 and 2)")
    args = p.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_panning_clip(Path(tmp) / "clip.mp4", args.seconds, 25, width, height)
        info = media.probe_video(clip)
        print(f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, torch threads "
              f"{torch.get_num_threads()}; {args.size} H.264 of a panning picture, {args.seconds:g} s at 25 fps, "
              f"best of {args.rounds} alternating rounds")
        print(f"{'fps':>5} {'frames':>7} {'without s':>10} {'with motion s':>14} {'with / without':>15}")
        for fps in args.fps or [1.0, 2.0]:
            plain, moving = [], []
            for _ in range(args.rounds):
                timed(lambda: media.sample_frames(clip, fps, info), plain)
                timed(lambda: media.sample_frames_and_motion(clip, fps, info), moving)
            frames, _ = media.sample_frames(clip, fps, info)
            same, _, channels = media.sample_frames_and_motion(clip, fps, info)
            assert torch.equal(frames, same), "the option changed the sampled frames"
            assert channels.shape == (len(frames), 2) and channels.abs().sum() > 0, "no motion measured"
            a, b = min(plain), min(moving)
            print(f"{fps:>5g} {len(frames):>7} {a:>10.2f} {b:>14.2f} {b / a:>14.2f}x")


if __name__ == "__main__":
    main()
