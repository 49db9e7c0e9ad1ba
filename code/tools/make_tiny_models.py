#!/usr/bin/env python
"""Write a complete tiny random model bundle and print the MODEL folder to pass to --model.

    python code/tools/make_tiny_models.py DIR            # prints DIR/video-encoder (mono)
    python code/tools/make_tiny_models.py DIR --stereo   # prints DIR/video-encoder-stereo

The bundle holds a tiny MusicGen (mono and stereo, with tokenizer), a tiny CLIP and untrained
video encoders naming them, so every command runs offline in seconds. The weights are random:
the "music" is noise. It exists to test the software, not to listen to.
"""

from __future__ import annotations

from video_bgm.cli import ArgumentParser, quiet_libraries, run


def main(argv=None) -> int:
    p = ArgumentParser(prog="make_tiny_models.py", description=__doc__.split("\n\n")[0])
    p.add_argument("dir", help="folder to write the bundle into (created if missing)")
    p.add_argument("--stereo", action="store_true", help="print the stereo model's folder instead")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    args = p.parse_args(argv)
    quiet_libraries()
    from video_bgm.random_models import write_tiny_bundle  # torch, transformers: after the arguments

    models = write_tiny_bundle(args.dir, seed=args.seed)
    print(models["video-encoder-stereo" if args.stereo else "video-encoder"])
    return 0


if __name__ == "__main__":
    run(main, "make_tiny_models.py")
