"""Write background music for a video.

    python code/inference/generate.py clip.mp4 --model MODEL --out clip_music.mp4

writes clip_music.mp4 (the original video stream, copied, with the new music as its only
audio track, exactly as long as the video) and clip_music.wav. MODEL is a model folder
(ours, or a thesis checkpoint folder), a Hugging Face Hub repo id (with --subfolder and
--revision), or a checkpoint name such as nature_small (see download_models.py --list);
without --model, the thesis's nature_small checkpoint (downloaded on first use).

VIDEO may be a folder: every video in it (--recursive: and in its subfolders) gets music, written
under --out (a folder) with the same layout; finished outputs are skipped, a file that fails is
reported and skipped, and the exit code is 1 if any failed. Music of any length is made in
windows (--window, --overlap); it is normalised to --loudness LUFS with short fades, and
--keep-original-audio DB mixes it with the video's own sound instead of replacing it.

The input is never overwritten, and a file the command was not told to write (the WAV beside
the video) is replaced only with --overwrite; every output is checked before the model loads.
"""

from __future__ import annotations

from pathlib import Path

from .. import hub
from ..cli import (ArgumentParser, StageProgress, add_generation_arguments, add_precision_argument,
                   add_threads_argument, generation_params, quiet_libraries, set_threads)
from ..config import DEFAULT_DUCK, DEFAULT_FADE, DEFAULT_LOUDNESS, SAMPLING_OPTIONS, Mix
from ..errors import UserInputError
from ..formats import OUTPUT_FORMATS

PROG = "generate.py"
OUTPUT_SUFFIXES = tuple(OUTPUT_FORMATS)  # the containers we write


def parse_args(argv=None, prog: str = PROG):
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("video", help="input video (any container/codec FFmpeg reads), or a folder of videos")
    p.add_argument("--model", default=None,
                   help=f"model folder, hub repo id or checkpoint name (default: {hub.DEFAULT_MODEL}, from the hub)")
    p.add_argument("--subfolder", default=None, help="folder inside the hub repo (e.g. models_frozen_decoder/symmv_medium)")
    p.add_argument("--revision", default=None, help="hub branch, tag or commit (default: main)")
    p.add_argument("--musicgen", default=None, help="MusicGen to use instead of the one the model names (hub id or folder)")
    p.add_argument("--out", required=True, help=f"output video ({', '.join(OUTPUT_SUFFIXES)}); the WAV goes beside it. "
                                              "With a folder of videos: the output folder")
    add_generation_arguments(p, ["seed", *SAMPLING_OPTIONS, "duration", "prompt", "window", "overlap"])
    p.add_argument("--follow-cuts", action="store_true",
                   help="scene-aware windows: the music's windows (and what conditions them) start at the shot cuts")
    p.add_argument("--cuts", dest="cuts_file", default=None, metavar="FILE",
                   help="the cuts by hand: one time in seconds per line (default: detected with PySceneDetect)")
    add_generation_arguments(p, ["cut_min_seconds", "candidates", "nudge"])
    p.add_argument("--variations", type=int, default=1,
                   help="takes per video, written as NAME_1, NAME_2, ... (seeds SEED, SEED+1, ...; default 1)")
    p.add_argument("--recursive", action="store_true", help="with a folder: its subfolders' videos too")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing files the command was not told to write (the WAV beside --out, "
                        "the takes NAME_1, ...); the input is never replaced")
    p.add_argument("--loudness", type=float, default=DEFAULT_LOUDNESS,
                   help="output loudness in LUFS (ITU-R BS.1770; default -16)")
    p.add_argument("--fade", type=float, default=DEFAULT_FADE,
                   help="seconds of fade-in and fade-out on the music (default 0.5; 0: none)")
    p.add_argument("--keep-original-audio", type=float, default=None, metavar="DB",
                   help="keep the video's own sound and mix the music DB dB relative to it "
                        "(-12: music 12 dB under the original; default: replace the sound with the music)")
    p.add_argument("--duck", type=float, default=DEFAULT_DUCK, metavar="DB",
                   help="with --keep-original-audio: lower the music by DB dB more while the original is loud "
                        "(default 6; 0: off)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda if present")
    add_precision_argument(p)
    add_threads_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def folder_mode_cuts(args) -> bool:
    return args.cuts_file is not None and Path(args.video).is_dir()


def main(argv=None, prog: str = PROG) -> int:
    args = parse_args(argv, prog)
    quiet_libraries()
    set_threads(args.threads)
    from .. import batch, media, outputs  # torch, PyAV: after the arguments
    from ..pipeline import VideoBGM
    params = generation_params(args)
    mix = Mix(loudness=args.loudness, fade=args.fade, keep_original=args.keep_original_audio,
                       duck=args.duck)
    try:
        params.validate()
        mix.validate()
    except ValueError as err:
        raise UserInputError(f"--{str(err).replace('_', '-')}") from None
    if args.variations < 1:
        raise UserInputError(f"--variations: must be at least 1, got {args.variations}")
    if folder_mode_cuts(args):
        raise UserInputError("--cuts: give a cuts file for one video, not a folder (cuts are detected per video)")
    if args.model is None and (args.subfolder or args.revision):
        raise UserInputError("--subfolder and --revision need --model (a hub repo id)")
    folder_mode = Path(args.video).is_dir()
    out = Path(args.out)
    # Everything that can fail without the model fails here, before it loads.
    if folder_mode:
        if out.suffix.lower() in OUTPUT_SUFFIXES or out.is_file():
            raise UserInputError(f"--out {out}: with a folder of videos, --out is a folder")
        if outputs.is_same_file(out, args.video):
            raise UserInputError(f"--out {out}: is the input folder; the outputs would replace its videos")
        batch.videos_in(Path(args.video), args.recursive)  # an empty folder fails before any model loads
        outputs.check_writable_folder(next(p for p in [out, *out.absolute().parents] if p.exists()))
    else:
        outputs.check_name_length(out)
        if out.is_dir():
            raise UserInputError(f"--out {out}: is a folder; name the output video ({', '.join(OUTPUT_SUFFIXES)})")
        if out.suffix.lower() not in OUTPUT_SUFFIXES:
            raise UserInputError(f"--out {out}: use one of {', '.join(OUTPUT_SUFFIXES)}")
        if not out.parent.is_dir():
            raise UserInputError(f"--out {out}: folder {out.parent} does not exist")
        info = media.probe_video(args.video)  # bad input fails here, before any model loads
        if args.cuts_file is not None:
            from ..shots import read_cuts_file

            params.cuts = read_cuts_file(args.cuts_file, duration=info.duration)
        outs = batch.variation_paths(out, args.variations)
        batch.check_takes(args.video, outs, overwrite=args.overwrite, named=len(outs) == 1)
    model = VideoBGM.from_pretrained(args.model or hub.DEFAULT_MODEL, device=args.device, musicgen=args.musicgen,
                                     subfolder=args.subfolder, revision=args.revision,
                                     precision=args.precision)

    bars = []

    def progress(video, index, count):
        if bars:
            bars.pop().close()
        bars.append(StageProgress(disable=args.quiet))
        return bars[-1]

    try:
        if folder_mode:
            out.mkdir(parents=True, exist_ok=True)
            summary = batch.run_folder(model, args.video, out, params, mix, args.variations, args.recursive,
                                       progress=progress)
        else:
            written = batch.write_music(model, args.video, info, params, mix, outs, progress=progress,
                                        overwrite=args.overwrite)
    finally:
        for bar in bars:
            bar.close()
    if folder_mode:
        print(f"{args.video}: {summary.line()}")
        for video, reason in summary.failed:
            print(f"  failed: {reason if str(video) in reason else f'{video}: {reason}'}")
        return 1 if summary.failed else 0
    for w in written:
        print(f"wrote {w.video} and {w.wav} ({w.duration:.2f} s of music, seed {w.seed})"
              + "".join(f"; {note}" for note in w.notes))
    return 0
