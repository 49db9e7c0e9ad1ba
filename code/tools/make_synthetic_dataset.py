#!/usr/bin/env python
"""Write a small synthetic training set whose music depends on the picture.

    python code/tools/make_synthetic_dataset.py data/tiny            # data/tiny/videos/clip00.mp4 ... clip15.mp4

Each clip is a flat colour with a sine tone whose pitch the colour picks (four colours, four
pitches), in the `videos_with_audio` layout: a model trained on it (training_conf_tiny.yml) must
show a positive conditioning gain. Test data, made here so that the repository ships no media.

--kind switch: the colour and the pitch change at mid-clip (OUT/videos + OUT/audio, the
`videos_and_wavs` layout); --kind motion: a bar sweeping at one of four speeds sets a click
track's rate (same layout). bench/timeline.py trains on all three.
"""

from __future__ import annotations

from pathlib import Path

from video_bgm.cli import ArgumentParser, run


def main(argv=None) -> int:
    p = ArgumentParser(prog="make_synthetic_dataset.py", description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="dataset folder (the clips go into OUT/videos)")
    p.add_argument("--clips", type=int, default=16, help="number of clips (default 16)")
    p.add_argument("--seconds", type=float, default=3.0, help="length of the shortest clip (default 3)")
    p.add_argument("--kind", default="content", choices=["content", "switch", "motion"],
                   help="what the music follows: the colour (default), the colour changing at mid-clip, or motion")
    args = p.parse_args(argv)
    from video_bgm.synthetic import write_motion_clips, write_paired_clips, write_switch_clips  # PyAV: after the arguments

    if args.clips < 4:
        p.error("--clips must be at least 4 (one per colour)")
    if not args.seconds > 0:
        p.error("--seconds must be positive")
    if args.kind == "content":
        folder = write_paired_clips(Path(args.out) / "videos", args.clips, args.seconds)
    else:
        folder = {"switch": write_switch_clips, "motion": write_motion_clips}[args.kind](args.out, args.clips, args.seconds)
    print(folder)
    return 0


if __name__ == "__main__":
    run(main, "make_synthetic_dataset.py")
