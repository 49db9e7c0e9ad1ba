#!/usr/bin/env python
"""Benchmark: one training step with cached features against the frozen decoder's own cost.

Real-size architectures with random weights (musicgen-small, CLIP ViT-B/32, the default temporal
transformer of training_conf.yml), built locally. Everything is timed in one run and printed as
ratios, since absolute seconds on shared machines drift.

    python bench/training.py                   # batch 2 x 10 s, as in the notes
    python bench/training.py --seconds 2       # a quick look

Prints:
  ours / bare decoder        our training step (temporal transformer, MusicGen's projection, the
                             frozen decoder's loss, backward, clipping, AdamW) on cached features
                             over the bare frozen-decoder forward + backward on the same batch
  recompute / ours           a step that first decodes the clips' frames and music and runs CLIP
                             and EnCodec again (the thesis's way) over our cached step
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch


def timed(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="segment length (default 10)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="timed runs of each step (best is kept)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)

    from video_bgm import media
    from video_bgm.config import TemporalConfig
    from video_bgm.frames import CLIPFrameEncoder
    from video_bgm.musicgen import MusicGen
    from video_bgm.random_models import musicgen_config, random_musicgen, save_clip
    from video_bgm.synthetic import write_test_video
    from video_bgm.temporal import TemporalTransformer
    from video_bgm.data.cache import encode_music

    device = torch.device(args.device)
    work = Path(tempfile.mkdtemp(prefix="bench-training-"))
    B, seconds, fps = args.batch_size, args.seconds, 1.0
    print(f"device: {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else platform.machine()}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}; batch {B} x {seconds:g} s")
    print("building musicgen-small, CLIP ViT-B/32 and the default temporal transformer (random weights) ...",
          flush=True)
    musicgen = MusicGen(random_musicgen(musicgen_config("small")).to(device))
    clip = CLIPFrameEncoder(str(save_clip(work / "clip", "base-patch32"))).to(device)
    torch.manual_seed(0)
    temporal = TemporalTransformer(TemporalConfig()).to(device).train()
    optimizer = torch.optim.AdamW(temporal.parameters(), lr=1e-4)
    videos = [write_test_video(work / f"clip{i}.mp4", duration=seconds, fps=30, size=(640, 360), audio_channels=1)
              for i in range(B)]

    frames_per_clip = int(seconds * fps)
    num_codes = round(seconds * musicgen.frame_rate)
    features = torch.randn(B, frames_per_clip, 512, device=device)
    mask = torch.ones(B, frames_per_clip, dtype=torch.bool, device=device)
    codes = torch.randint(0, 2048, (B, musicgen.num_codebooks, num_codes), device=device)

    def cached_step(features=features, codes=codes):
        tokens, token_mask = temporal(features, mask)
        loss = musicgen.loss(musicgen.project_text(tokens), token_mask, codes)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(temporal.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # The floor: the frozen decoder's forward + backward into a conditioning of the same shape.
    condition = torch.randn(B, frames_per_clip, musicgen.decoder_dim, device=device, requires_grad=True)

    def bare_step():
        musicgen.loss(condition, mask, codes).backward()
        condition.grad = None

    def recompute_step():
        feats, music = [], []
        for video in videos:
            frames, _ = media.sample_frames(video, fps, duration=seconds)
            feats.append(clip.encode(frames))
            audio = torch.from_numpy(media.decode_audio(video, musicgen.sample_rate, 1, duration=seconds))
            music.append(encode_music(musicgen, audio)[:, :num_codes])
        cached_step(torch.stack(feats)[:, :frames_per_clip], torch.stack(music).to(device))

    print("warm-up ...", flush=True)
    bare_step()
    cached_step()
    # Interleaved rounds, best of each: load from other processes hits all three alike.
    ours = bare = recompute = float("inf")
    for _ in range(args.repeats):
        ours = min(ours, timed(cached_step, 1))
        bare = min(bare, timed(bare_step, 1))
        recompute = min(recompute, timed(recompute_step, 1))
    print()
    print(f"{'ours / bare decoder':24s} {ours / bare:6.3f}x   ({ours:.2f} s vs {bare:.2f} s per step)")
    print(f"{'recompute / ours':24s} {recompute / ours:6.3f}x   ({recompute:.2f} s vs {ours:.2f} s per step)")


if __name__ == "__main__":
    main()
