#!/usr/bin/env python
"""Benchmark: the whole video -> music pipeline against transformers' bare MusicGen ``generate``.

Real-size architectures with random weights (musicgen-small and CLIP ViT-B/32 shapes, built
locally: no download; compute does not depend on the weights' values). Everything is timed
in one run and printed as ratios, since absolute seconds on shared machines drift.

    python bench/generation.py                 # 10 s clip, guidance 3, top-k 250
    python bench/generation.py --duration 2    # a quick look

Prints:
  pipeline / bare generate   our VideoBGM.generate(video) (frames, CLIP, temporal transformer,
                             guided sampling, EnCodec) over MusicgenForConditionalGeneration.generate
                             (same guidance, top-k, frames, EnCodec decode) on the same weights
  per-second seeking / ours  opening the video and seeking once per sampled second, over
                             media.sample_frames (one reader, decoding only the sampled frames)
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls (the least disturbed by other load) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, result


def seek_per_second(path: str, fps: float, duration: float) -> int:
    """The thesis's way: open the video and seek once per sampled timestamp."""
    import decord

    count = 0
    for i in range(int(duration * fps)):
        reader = decord.VideoReader(path)
        index = min(int(round(i / fps * reader.get_avg_fps())), len(reader) - 1)
        reader.seek_accurate(index)
        reader.next().asnumpy()
        count += 1
    return count


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds of video and music (default 10)")
    p.add_argument("--guidance-scale", type=float, default=3.0)
    p.add_argument("--top-k", type=int, default=250)
    p.add_argument("--repeats", type=int, default=1, help="timed runs of each generation (best is kept)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)

    from video_bgm import media
    from video_bgm.config import FrameEncoderConfig, GenerationParams, TemporalConfig, VideoModelConfig
    from video_bgm.frames import CLIPFrameEncoder
    from video_bgm.musicgen import MusicGen
    from video_bgm.pipeline import VideoBGM
    from video_bgm.random_models import musicgen_config, random_musicgen, save_clip
    from video_bgm.synthetic import write_test_video
    from video_bgm.temporal import TemporalTransformer

    device = torch.device(args.device)
    work = Path(tempfile.mkdtemp(prefix="bench-generation-"))
    video = write_test_video(work / "clip.mp4", duration=args.duration, fps=30, size=(640, 360))
    print(f"device: {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else platform.processor() or platform.machine()}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"clip: {args.duration:g} s 640x360 30 fps H.264; guidance {args.guidance_scale}, top-k {args.top_k}")

    print("building musicgen-small and CLIP ViT-B/32 shapes with random weights ...", flush=True)
    hf_model = random_musicgen(musicgen_config("small")).to(device)
    musicgen = MusicGen(hf_model, name="musicgen-small (random)")
    config = VideoModelConfig(musicgen="facebook/musicgen-small", fps=1.0,
                              frame_encoder=FrameEncoderConfig(kind="clip", name=str(work / "clip")),
                              temporal=TemporalConfig())
    frame_encoder = CLIPFrameEncoder(str(save_clip(work / "clip", "base-patch32"))).to(device)
    torch.manual_seed(0)
    model = VideoBGM(config, frame_encoder, TemporalTransformer(config.temporal).to(device).eval(), musicgen)
    params = GenerationParams(guidance_scale=args.guidance_scale, top_k=args.top_k, seed=0)

    stages: dict[str, float] = {}
    last = {"stage": None, "t": 0.0}

    def progress(stage, done, total):  # time spent per stage, from the pipeline's own callback
        now = time.perf_counter()
        if last["stage"] is not None:
            stages[last["stage"]] = stages.get(last["stage"], 0.0) + now - last["t"]
        last.update(stage=stage, t=now)

    # Same conditioning shape for the bare path: the video tokens, in T5 space, doubled for guidance.
    num_frames = int(args.duration * musicgen.frame_rate + 0.999)
    tokens = int(args.duration * config.fps + 0.999)
    cond = torch.randn(1, tokens, musicgen.text_dim, device=device)
    mask = torch.ones(1, tokens, dtype=torch.long, device=device)

    def bare_generate():
        return hf_model.generate(
            inputs=torch.zeros(1, 1, dtype=torch.long, device=device),
            encoder_outputs=(torch.cat([cond, torch.zeros_like(cond)]),),
            attention_mask=torch.cat([mask, torch.zeros_like(mask)]), do_sample=True,
            guidance_scale=args.guidance_scale, top_k=args.top_k,
            max_new_tokens=num_frames + musicgen.num_codebooks - 1)

    def pipeline():
        stages.clear()
        last["stage"] = None
        result = model.generate(video, params, progress=progress)
        progress("done", 0, 0)
        return result

    print("warm-up ...", flush=True)
    short = GenerationParams(guidance_scale=args.guidance_scale, top_k=args.top_k, seed=0, duration=0.5)
    model.generate(video, short)
    with torch.no_grad():
        ours, result = timed(pipeline, args.repeats)
        bare, audio = timed(bare_generate, args.repeats)
    assert result.audio.shape[-1] == round(args.duration * musicgen.sample_rate)

    fps = config.fps
    naive, _ = timed(lambda: seek_per_second(video, fps, args.duration), 3)
    sampled, _ = timed(lambda: media.sample_frames(video, fps), 3)

    steps = num_frames + musicgen.num_codebooks - 1
    conditioning = stages.get("frames", 0.0) + stages.get("encoding", 0.0)
    print()
    print(f"{'pipeline / bare generate':28s} {ours / bare:6.3f}x   ({ours:.1f} s vs {bare:.1f} s for {steps} steps; "
          f"sampling loop alone {1000 * stages.get('generating', 0.0) / steps:.0f} ms/step)")
    print(f"{'video conditioning share':28s} {conditioning / ours:6.3f}    (frames {stages.get('frames', 0):.2f} s, "
          f"CLIP + temporal {stages.get('encoding', 0):.2f} s, decode {stages.get('decoding', 0):.2f} s)")
    print(f"{'per-second seeking / ours':28s} {naive / sampled:6.3f}x   ({naive:.2f} s vs {sampled:.2f} s for "
          f"{int(args.duration * fps)} frames)")


if __name__ == "__main__":
    main()
