"""Evaluate video-to-music models: audio quality, diversity and video-music correspondence.

    python code/evaluation/evaluate.py --model M --data runs/x --split test --out report/   # generate + score
    python code/evaluation/evaluate.py --model M --data videos/ --out report/               # a folder of videos
    python code/evaluation/evaluate.py --generated gen/ --reference ref/ --musicgen facebook/musicgen-small --out report/

writes report/metrics.json, report/index.html, report/report.md and report/plots/*.png, with
MusicGen baselines (unconditional, generic text prompt) and any --baseline-model beside the model.
"""

from __future__ import annotations

import argparse

from ..cli import ArgumentParser, add_generation_arguments, add_threads_argument, quiet_libraries, set_threads
from ..config import SAMPLING_OPTIONS
from ..evaluation import DEFAULT_CLAP
from ..evaluation.protocols import PROTOCOLS

PROG = "evaluate.py"


def parse_args(argv=None, prog: str = PROG):
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="report folder (created; generated music goes in <out>/generated)")
    p.add_argument("--model", default=None, help="video model to evaluate (folder, hub id or checkpoint name); "
                                                 "with --generated, it judges the given music's correspondence")
    p.add_argument("--baseline-model", action="append", default=[], metavar="REF",
                   help="another video model (e.g. a thesis checkpoint) scored the same way (repeatable)")
    p.add_argument("--data", default=None, help="clips: a folder of videos (their audio is the reference), a "
                                                "training run folder (with --split) or a CSV/JSONL manifest")
    p.add_argument("--split", default=None, help="with a training run as --data: training, validation or test (default test)")
    p.add_argument("--generated", action="append", default=[], metavar="DIR",
                   help="score these files instead of generating: <id>[.take<k>].wav (repeatable; a folder of "
                        "folders is one system per folder)")
    p.add_argument("--reference", default=None, help="with --generated: the reference music (any form --data takes, "
                                                     "or a folder of audio files)")
    p.add_argument("--musicgen", default=None, help="MusicGen whose EnCodec embeds the music when there is no --model")
    p.add_argument("--takes", type=int, default=None,
                   help="pieces per video and system, for diversity across takes (default 2; 1 with --protocol)")
    p.add_argument("--seconds", type=float, default=None,
                   help="seconds of music per clip, and of reference (default 10; a --protocol fixes its own)")
    p.add_argument("--protocol", default=None, choices=sorted(PROTOCOLS),
                   help="a benchmark's recipe: its clip length, one piece per video, its metrics, and a table in its "
                        "published columns (README: Benchmark protocols)")
    p.add_argument("--segment-seconds", type=float, default=None,
                   help="segment for the conditioning gain (default: the training run's, else --seconds)")
    p.add_argument("--seed", type=int, default=0, help="base seed; piece seeds are seed + 1000 * clip + take")
    add_generation_arguments(p, SAMPLING_OPTIONS)
    p.add_argument("--baseline-prompt", default="background music", help='MusicGen text baseline prompt (default "background music")')
    p.add_argument("--no-musicgen-baselines", action="store_true", help="skip the unconditional and text MusicGen baselines")
    p.add_argument("--caption-prompts", action="store_true", help="video models generate with the clip's caption as prompt")
    p.add_argument("--clap", default=DEFAULT_CLAP, help=f"CLAP model for FAD and text scores (default {DEFAULT_CLAP})")
    p.add_argument("--no-clap", action="store_true", help="skip the CLAP metrics")
    from ..evaluation.suite import METRICS  # no torch: the models load only when built

    for name, metric in METRICS.items():
        p.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=None,
                       help=f"{metric.help} (default: on where its weights are cached)")
    p.add_argument("--cache-dir", default=None, help="embedding and feature cache (default <out>/cache)")
    p.add_argument("--training-log", default=None, help="metrics.jsonl for the loss curves (default: found beside the model or run)")
    p.add_argument("--case-study", type=int, default=3, help="clips shown as frames + spectrograms (default 3)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_threads_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv=None, prog: str = PROG) -> int:
    args = parse_args(argv, prog)
    quiet_libraries()
    set_threads(args.threads)
    from ..evaluation.runner import EvalOptions, evaluate, with_protocol  # torch, transformers: after the arguments
    from ..evaluation.suite import METRICS

    options = EvalOptions(
        out=args.out, model=args.model, baseline_models=args.baseline_model, data=args.data, split=args.split,
        generated=args.generated, reference=args.reference,
        segment_seconds=args.segment_seconds, seed=args.seed, guidance_scale=args.guidance_scale,
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, baseline_prompt=args.baseline_prompt,
        musicgen_baselines=not args.no_musicgen_baselines, caption_prompts=args.caption_prompts,
        clap=None if args.no_clap else args.clap, metrics={name: getattr(args, name.replace("-", "_")) for name in METRICS},
        musicgen=args.musicgen, cache_dir=args.cache_dir,
        training_log=args.training_log, device=args.device, batch_size=args.batch_size, case_study=args.case_study,
        show_progress=not args.quiet)
    if args.protocol:
        options = with_protocol(options, args.protocol)
    options.seconds = args.seconds if args.seconds is not None else options.seconds
    options.takes = args.takes if args.takes is not None else options.takes
    metrics = evaluate(options)
    for slug, system in metrics["systems"].items():
        fad = ", ".join(f"FAD {k} {v:.3f}" for k, v in system.get("fad", {}).items() if v is not None)
        print(f"{slug}: {system.get('pieces', 0)} pieces" + (f", {fad}" if fad else ""))
    print(f"report: {args.out}/index.html")
    return 0
