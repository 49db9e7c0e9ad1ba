#!/usr/bin/env python
"""Write a small example clip (8 s, 320x240, H.264 + AAC) to try generate.py on.

    python code/tools/make_example_clip.py example.mp4

Its frames are flat colours that change every frame and its sound is a sine tone: test media,
made here so that the repository ships no media files. Clips of different ``--seed`` differ in
colours and pitch (for a training set of distinct clips, see make_synthetic_dataset.py).
"""

from __future__ import annotations

from video_bgm.cli import ArgumentParser, run


def main(argv=None) -> int:
    p = ArgumentParser(prog="make_example_clip.py", description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="output video (.mp4, .mov, .mkv or .webm)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds (default 8)")
    p.add_argument("--seed", type=int, default=0, help="picks the colours and the pitch (default 0: 440 Hz)")
    args = p.parse_args(argv)
    from video_bgm.synthetic import frame_color, write_test_video  # PyAV: after the arguments

    fps, offset = 25, args.seed * 397  # 397: a prime, so seeds start the colour sequence far apart
    pitch = 440.0 * 2 ** ((args.seed % 24) / 12)  # two octaves of semitones
    print(write_test_video(args.out, duration=args.duration, fps=fps, size=(320, 240), audio_freq=pitch,
                           color_fn=lambda t: frame_color(round(t * fps) + offset)))
    return 0


if __name__ == "__main__":
    run(main, "make_example_clip.py")
