#!/usr/bin/env python
"""Benchmark: what the video encoder learns about WHEN, on three synthetic paired sets.

- content: a flat colour per clip picks its tone's pitch (the control: what, not when);
- switch: the colour changes at mid-clip and the pitch with it (the order of the two matters);
- motion: one grey picture with a bar sweeping at one of four speeds; the speed sets a click
  track's rate (only motion tells the clips apart).

Each set is trained with training_conf_tiny.yml's recipe (the tiny random bundle, 2 fps, the
whole clip as one segment) for --steps steps per variant and seed, and its held-out test clips are
scored before and after: the conditioning gain (shuffled videos minus matched, nats) and the order
gain (the video's halves swapped in time minus matched). The variants:

- global: the decoder's cross-attention sees every video token (today's models, the default);
- local: model.attention_band (--band s): each decoder step sees the frames near its time;
- motion, local+motion: the same with model.motion, frame-difference channels beside CLIP's.

The motion gain of a set is the conditioning gain with motion minus without, at the same
attention (global or local), seed by seed.

    python bench/timeline.py                               # 3 sets x 4 variants x 3 seeds, 600 steps
    python bench/timeline.py --variants global local --seeds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("global", "local", "motion", "local+motion")


def variant_overrides(variant: str, band: float) -> list[str]:
    """Config overrides of one variant (see the module docstring)."""
    overrides = []
    if "local" in variant:
        overrides.append(f"model.attention_band={band}")
    if "motion" in variant:
        overrides.append("model.motion=true")
    return overrides


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="bench-timeline", help="folder for the data and the runs (kept)")
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--seeds", type=int, default=3, help="training seeds per set and variant (default 3)")
    p.add_argument("--sets", nargs="+", default=["content", "switch", "motion"],
                   choices=["content", "switch", "motion"])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--band", type=float, default=1.0, help="attention band of the local variants, s (default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from video_bgm.random_models import write_tiny_bundle
    from video_bgm.synthetic import write_motion_clips, write_paired_clips, write_switch_clips
    from video_bgm.train.config import load_train_config
    from video_bgm.train.loop import Trainer

    work = Path(args.work).resolve()
    bundle = work / "tiny"
    if not (bundle / "video-encoder").is_dir():
        write_tiny_bundle(bundle)
    makers = {"content": lambda d: write_paired_clips(d / "videos", args.clips, 4.0),
              "switch": lambda d: write_switch_clips(d, args.clips, 4.0),
              "motion": lambda d: write_motion_clips(d, args.clips, 4.0)}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} cores, load average {load:.2f}, torch {torch.__version__}, {args.threads} thread(s); "
          f"{args.clips} clips of 4 s per set, {args.steps} steps, band {args.band} s for the local variants")
    results = {}  # (set, variant, seed) -> (untrained test metrics, trained test metrics, seconds, warnings)
    for name in args.sets:
        data = work / "data" / name
        if not (data / "videos").is_dir():
            makers[name](data)
        for variant in args.variants:
            for seed in range(args.seeds):
                out = work / "runs" / f"{name}-{variant.replace('+', '-')}-{seed}"
                shutil.rmtree(out, ignore_errors=True)
                overrides = [f"output_dir={out}", f"seed={seed}", f"data.videos={data / 'videos'}",
                             f"data.cache_dir={work / 'cache'}", "data.segment_seconds=4.0",
                             f"model.musicgen={bundle / 'musicgen-mono'}", f"model.frame_encoder.name={bundle / 'clip'}",
                             f"train.max_steps={args.steps}", f"train.eval_every={max(1, args.steps // 6)}",
                             f"train.save_every={args.steps}", *variant_overrides(variant, args.band)]
                if name != "content":
                    overrides += ["data.layout=videos_and_wavs", f"data.audio={data / 'audio'}"]
                config = load_train_config(REPO / "training_conf_tiny.yml", overrides)
                start = time.perf_counter()
                result = Trainer(config, show_progress=False).run()
                metrics = json.loads((result.model_dir / "metrics.json").read_text())
                results[name, variant, seed] = (metrics["untrained_test"], metrics["test"],
                                                time.perf_counter() - start, metrics["warnings"])
                after = metrics["test"]
                print(f"  {name} {variant} seed {seed}: gain {after['conditioning_gain']:+.4f}, "
                      f"order gain {after['order_gain']:+.4f}, {results[name, variant, seed][2]:.0f} s", flush=True)

    print(f"\n{'set':8s} {'variant':13s} {'seed':>4s} {'clips':>5s} {'gain before':>11s} {'gain after':>10s} "
          f"{'order before':>12s} {'order after':>11s} {'seconds':>8s}")
    for (name, variant, seed), (before, after, seconds, warnings) in results.items():
        print(f"{name:8s} {variant:13s} {seed:4d} {after['clips']:5d} {before['conditioning_gain']:+11.4f} "
              f"{after['conditioning_gain']:+10.4f} {before['order_gain']:+12.4f} {after['order_gain']:+11.4f} "
              f"{seconds:8.0f}" + ("   collapsed" if warnings else ""))

    def spread(values) -> str:
        values = np.asarray(values, dtype=float)
        sd = values.std(ddof=1) if len(values) > 1 else 0.0
        return f"{values.mean():+.3f} ± {sd:.3f}"

    print("\nmean ± sd over seeds (nats; untrained: the mean of the variant's baselines)")
    print(f"{'set':8s} {'variant':13s} {'gain untrained':>14s} {'gain trained':>16s} {'order untrained':>15s} "
          f"{'order trained':>16s} {'motion gain':>16s} {'collapsed':>9s}")
    seeds = range(args.seeds)
    for name in args.sets:
        for variant in args.variants:
            runs = [results[name, variant, s] for s in seeds]
            motion_gain = ""
            base = variant.replace("motion", "").rstrip("+") or "global"
            if "motion" in variant and base in args.variants:
                motion_gain = spread([results[name, variant, s][1]["conditioning_gain"]
                                      - results[name, base, s][1]["conditioning_gain"] for s in seeds])
            print(f"{name:8s} {variant:13s} {np.mean([r[0]['conditioning_gain'] for r in runs]):+14.3f} "
                  f"{spread([r[1]['conditioning_gain'] for r in runs]):>16s} "
                  f"{np.mean([r[0]['order_gain'] for r in runs]):+15.3f} "
                  f"{spread([r[1]['order_gain'] for r in runs]):>16s} {motion_gain:>16s} "
                  f"{sum(bool(r[3]) for r in runs):>5d}/{len(runs)}")


if __name__ == "__main__":
    main()
