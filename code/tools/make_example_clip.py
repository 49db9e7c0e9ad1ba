#!/usr/bin/env python
"""Write a small example clip (8 s, 320x240, H.264 + AAC) to try generate.py on.

    python code/tools/make_example_clip.py example.mp4

Its frames are flat colours that change every frame and its sound is a sine tone: test media,
made here so that the repository ships no media files.
"""

from __future__ import annotations

from video_bgm.cli import ArgumentParser, run
from video_bgm.synthetic import write_test_video


def main(argv=None) -> int:
    p = ArgumentParser(prog="make_example_clip.py", description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="output video (.mp4, .mov, .mkv or .webm)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds (default 8)")
    args = p.parse_args(argv)
    print(write_test_video(args.out, duration=args.duration, fps=25, size=(320, 240)))
    return 0


if __name__ == "__main__":
    run(main, "make_example_clip.py")
