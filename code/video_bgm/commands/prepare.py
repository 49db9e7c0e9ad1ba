"""Build a training set from a folder of raw videos: shot cuts, exact clips, music stems, filters, a split.

    python code/tools/prepare_dataset.py footage/ data/mine                 # Demucs's music stem, 30 s clips
    python code/tools/prepare_dataset.py footage/ data/mine --separate none --workers 2
    python code/tools/prepare_dataset.py footage/ data/mine --ray auto      # on a running Ray cluster

writes data/mine/manifest.jsonl (training's `manifest` layout: set data.layout: manifest and
data.manifest: data/mine/manifest.jsonl), clips/, audio/htdemucs/<clip>/no_vocals.wav, summary.md and
the score histograms. Run it again to resume: what is done is not done again.
"""

from __future__ import annotations

from ..cli import (ArgumentParser, add_dataclass_arguments, add_threads_argument, dataclass_from_args, positive_int,
                   set_threads)

PROG = "prepare_dataset.py"

HELP = {
    "clip_seconds": "clip length in seconds",
    "min_seconds": "a shot's shorter leftover is kept from this length on, else dropped",
    "across_cuts": "let clips span shot cuts (no shot detection)",
    "detector": "PySceneDetect's detector",
    "threshold": "the detector's threshold (default: PySceneDetect's, 27 content / 3 adaptive)",
    "separate": "music stem: Demucs's no_vocals, or the soundtrack as it is",
    "demucs_model": "Demucs model name or signature",
    "demucs_repo": "a folder of Demucs model packages (<signature>.th), as Demucs's --repo",
    "demucs_batch": "clips per Demucs pass (0: 8 on a GPU, 1 on the CPU)",
    "device": "Demucs's device",
    "fps": "frames per second sampled for the picture scores (the model's fps)",
    "min_loudness": "drop clips whose music is quieter (LUFS, BS.1770)",
    "max_vocal_share": "drop clips where the vocals stem has more of the energy (speech, singing)",
    "min_motion": "drop clips whose picture changes less (mean grey difference between sampled frames, 0-1)",
    "max_black_share": "drop clips with a larger share of black frames",
    "max_blank_share": "drop clips with a larger share of uniform frames",
    "max_duplicate_share": "drop clips with a larger share of frames seen in an earlier clip of another source",
    "hash_distance": "frames whose perceptual hashes differ in at most this many bits are the same picture",
    "val_fraction": "share of the kept clips for validation (whole sources)",
    "test_fraction": "share of the kept clips for test (whole sources)",
    "split_seed": "seed of the split",
    "crf": "x264 quality of the clips (lower is better)",
    "preset": "x264 speed preset of the clips",
}


def parse_args(argv=None, prog: str = PROG):
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="a folder of videos (searched recursively) or one video")
    p.add_argument("out", help="the dataset folder (created; must be outside SRC)")
    from ..data.settings import PrepareSettings

    add_dataclass_arguments(p, PrepareSettings, HELP)  # one option per field: defaults and types from the dataclass
    p.add_argument("--workers", type=positive_int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run the tasks on a Ray cluster (auto, ray://host:10001, or local for a local runtime)")
    add_threads_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv=None, prog: str = PROG) -> int:
    from ..data.settings import PrepareSettings

    args = parse_args(argv, prog)
    from ..data.prepare import prepare  # PyAV, torch: after the arguments

    set_threads(args.threads)
    settings = dataclass_from_args(PrepareSettings, args)
    result = prepare(args.src, args.out, settings, workers=args.workers, ray_address=args.ray,
                     show_progress=not args.quiet, threads=args.threads)
    reasons = ", ".join(f"{n} {why}" for why, n in sorted(result.dropped.items(), key=lambda x: -x[1]))
    print(f"{result.kept} clips kept" + (f"; dropped: {reasons}" if reasons else "")
          + (f"; {len(result.unreadable)} sources unreadable" if result.unreadable else ""))
    print(f"manifest: {result.manifest}")
    return 0
