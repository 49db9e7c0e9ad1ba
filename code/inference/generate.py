#!/usr/bin/env python
"""Write background music for a video.

    python code/inference/generate.py clip.mp4 --model MODEL --out clip_music.mp4

writes clip_music.mp4 (the original video stream, copied, with the new music as its only
audio track, exactly as long as the video) and clip_music.wav. MODEL is a model folder
(ours, or a thesis checkpoint folder), a Hugging Face Hub repo id (with --subfolder and
--revision), or a checkpoint name such as nature_small (see download_models.py --list);
without --model, the thesis's nature_small checkpoint (downloaded on first use).
"""

from __future__ import annotations

from pathlib import Path

from video_bgm import hub, media
from video_bgm.cli import ArgumentParser, StageProgress, run
from video_bgm.config import GenerationParams
from video_bgm.errors import UserInputError
from video_bgm.pipeline import VideoBGM

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")


def parse_args(argv=None):
    p = ArgumentParser(prog="generate.py", description=__doc__.split("\n\n")[0])
    p.add_argument("video", help="input video (any container/codec FFmpeg reads)")
    p.add_argument("--model", default=None,
                   help=f"model folder, hub repo id or checkpoint name (default: {hub.DEFAULT_MODEL}, from the hub)")
    p.add_argument("--subfolder", default=None, help="folder inside the hub repo (e.g. models_frozen_decoder/symmv_medium)")
    p.add_argument("--revision", default=None, help="hub branch, tag or commit (default: main)")
    p.add_argument("--musicgen", default=None, help="MusicGen to use instead of the one the model names (hub id or folder)")
    p.add_argument("--out", required=True, help=f"output video ({', '.join(VIDEO_SUFFIXES)}); the WAV goes beside it")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random; the seed used is printed)")
    p.add_argument("--guidance-scale", type=float, default=3.0, help="classifier-free guidance (1: off; default 3)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1)")
    p.add_argument("--top-k", type=int, default=250, help="sample among the k likeliest codes (0: off; default 250)")
    p.add_argument("--top-p", type=float, default=0.0, help="nucleus sampling threshold (0: off; default)")
    p.add_argument("--duration", type=float, default=None, help="seconds of music (default: the video's length)")
    p.add_argument("--prompt", default=None, help='optional text prompt joined with the video, e.g. "calm piano"')
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda if present")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    params = GenerationParams(guidance_scale=args.guidance_scale, temperature=args.temperature,
                              top_k=args.top_k, top_p=args.top_p, duration=args.duration,
                              seed=args.seed, prompt=args.prompt)
    try:
        params.validate()
    except ValueError as err:
        raise UserInputError(f"--{str(err).replace('_', '-')}") from None
    out = Path(args.out)
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserInputError(f"--out {out}: use one of {', '.join(VIDEO_SUFFIXES)}")
    if not out.parent.is_dir():
        raise UserInputError(f"--out {out}: folder {out.parent} does not exist")
    info = media.probe_video(args.video)  # bad input fails here, before any model loads
    if args.model is None and (args.subfolder or args.revision):
        raise UserInputError("--subfolder and --revision need --model (a hub repo id)")
    model = VideoBGM.from_pretrained(args.model or hub.DEFAULT_MODEL, device=args.device, musicgen=args.musicgen,
                                     subfolder=args.subfolder, revision=args.revision)

    progress = StageProgress(disable=args.quiet)
    try:
        result = model.generate(args.video, params, progress=progress, info=info)
    finally:
        progress.close()
    media.write_outputs(args.video, result.audio, result.sample_rate, out, info.duration)
    print(f"wrote {out} and {out.with_suffix('.wav')} ({result.duration:.2f} s of music, seed {result.seed})")
    return 0


if __name__ == "__main__":
    run(main, "generate.py")
