#!/usr/bin/env python
"""Benchmark: what the video encoder learns about WHEN, on three synthetic paired sets.

- content: a flat colour per clip picks its tone's pitch (the control: what, not when);
- switch: the colour changes at mid-clip and the pitch with it (the order of the two matters);
- motion: one grey picture with a bar sweeping at one of four speeds; the speed sets a click
  track's rate (only motion tells the clips apart).

Each set is trained with training_conf_tiny.yml's recipe (the tiny random bundle, 2 fps, the
whole clip as one segment) for --steps steps, and its held-out test clips are scored before and
after: the conditioning gain (shuffled videos minus matched, nats) and the order gain (the video's
halves swapped in time minus matched). Global conditioning (today's decoder cross-attention over
all video tokens) is what runs; rows for time-local conditioning and motion features come with them.

    python bench/timeline.py                 # 3 sets x 24 clips, 600 steps each
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", default="bench-timeline", help="folder for the data and the runs (kept)")
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--seeds", type=int, default=1, help="training seeds per set (default 1)")
    args = p.parse_args(argv)

    import torch

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
    print(f"{os.cpu_count()} cores, load average {load:.2f}, torch {torch.__version__}; "
          f"{args.clips} clips of 4 s per set, {args.steps} steps")
    rows = []
    for name, make in makers.items():
        data = work / "data" / name
        if not (data / "videos").is_dir():
            make(data)
        for seed in range(args.seeds):
            out = work / "runs" / f"{name}-{seed}"
            shutil.rmtree(out, ignore_errors=True)
            overrides = [f"output_dir={out}", f"seed={seed}", f"data.videos={data / 'videos'}",
                         f"data.cache_dir={work / 'cache'}", "data.segment_seconds=4.0",
                         f"model.musicgen={bundle / 'musicgen-mono'}", f"model.frame_encoder.name={bundle / 'clip'}",
                         f"train.max_steps={args.steps}", f"train.eval_every={max(1, args.steps // 6)}",
                         f"train.save_every={args.steps}"]
            if name != "content":
                overrides += ["data.layout=videos_and_wavs", f"data.audio={data / 'audio'}"]
            config = load_train_config(REPO / "training_conf_tiny.yml", overrides)
            start = time.perf_counter()
            result = Trainer(config, show_progress=False).run()
            metrics = json.loads((result.model_dir / "metrics.json").read_text())
            before, after = metrics["untrained_test"], metrics["test"]
            rows.append((name, seed, before, after, time.perf_counter() - start, metrics["warnings"]))
    print(f"\n{'set':8s} {'seed':>4s} {'clips':>5s} {'gain before':>11s} {'gain after':>10s} "
          f"{'order before':>12s} {'order after':>11s} {'seconds':>8s}")
    for name, seed, before, after, seconds, warnings in rows:
        print(f"{name:8s} {seed:4d} {after['clips']:5d} {before['conditioning_gain']:+11.4f} "
              f"{after['conditioning_gain']:+10.4f} {before['order_gain']:+12.4f} {after['order_gain']:+11.4f} "
              f"{seconds:8.0f}" + ("   collapsed" if warnings else ""))
    import numpy as np

    print(f"\n{'set':8s} {'gain after (mean +- sd over seeds)':>36s} {'order gain after':>22s}")
    for name in makers:
        gains = np.array([[r[3]["conditioning_gain"], r[3]["order_gain"]] for r in rows if r[0] == name])
        sd = gains.std(axis=0, ddof=1) if len(gains) > 1 else np.zeros(2)
        print(f"{name:8s} {gains[:, 0].mean():+28.3f} +- {sd[0]:.3f} {gains[:, 1].mean():+14.3f} +- {sd[1]:.3f}")


if __name__ == "__main__":
    main()
