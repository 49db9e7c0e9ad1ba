#!/usr/bin/env python
"""Benchmark: preparation's near-duplicate hash (ours, pHash on scipy) against imagehash's.

Frames are crops of the natural photographs that the installed packages ship (matplotlib,
scikit-learn, gradio), 640x360 each, on a 4x4 grid of positions per photograph (neighbouring
crops overlap as the frames of a slow pan do). Each frame is compared with:

- a copy as another source would have it: downscaled to 426x240, JPEG quality 30, 8% brighter,
  film grain (a re-upload);
- a copy with 4% cut from every edge and scaled back (a re-framed upload);
- the next crop of the same photograph (the same scene, another moment: not a duplicate);
- every crop of the other photographs (a different picture).

Prints, per hash: the Hamming distance of each kind (median and 5th / 95th percentile), the share
within the threshold (8 bits, preparation's default: recall for copies, false matches otherwise),
how often its decision agrees with imagehash's pHash at the same threshold, and the time per
frame relative to ours (best of 3; ours hashes the sampled frames in one batch, as preparation
does, also timed from the thumbnails preparation already has; imagehash one PIL image at a time).

    pip install imagehash
    python bench/duplicate_hash.py
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch

SIZE = (640, 360)  # frame width, height


def photographs() -> list[Path]:
    """The natural photographs of the installed packages (those that are installed)."""
    import importlib.util

    found = []
    for package, names in (("matplotlib", ["mpl-data/sample_data/grace_hopper.jpg"]),
                           ("sklearn", ["datasets/images/china.jpg", "datasets/images/flower.jpg"]),
                           ("gradio", ["media_assets/images/cheetah.jpg", "media_assets/images/tower.jpg",
                                       "media_assets/images/groot.jpeg", "test_data/cheetah2.jpg"])):
        spec = importlib.util.find_spec(package)
        if spec and spec.origin:
            found += [p for p in (Path(spec.origin).parent / n for n in names) if p.is_file()]
    return found


def frames_of(photo: Path, grid: int = 4) -> list[np.ndarray]:
    from PIL import Image

    image = Image.open(photo).convert("RGB")
    w, h = image.size
    cw, ch = int(w * 0.7), int(h * 0.7)
    out = []
    for j in range(grid):
        for i in range(grid):
            x, y = round(i * (w - cw) / (grid - 1)), round(j * (h - ch) / (grid - 1))
            out.append(np.asarray(image.crop((x, y, x + cw, y + ch)).resize(SIZE, Image.BICUBIC)))
    return out


def reuploaded(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    small = Image.fromarray(frame).resize((426, 240), Image.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=30)
    back = np.asarray(Image.open(buffer).convert("RGB").resize(SIZE, Image.BILINEAR)).astype(np.float32)
    return (back * 1.08 + rng.normal(0, 4, back.shape)).clip(0, 255).astype(np.uint8)


def reframed(frame: np.ndarray) -> np.ndarray:
    from PIL import Image

    h, w = frame.shape[:2]
    dy, dx = round(h * 0.04), round(w * 0.04)
    return np.asarray(Image.fromarray(frame[dy:h - dy, dx:w - dx]).resize(SIZE, Image.BICUBIC))


def ours(frames: list[np.ndarray]) -> list[int]:
    from video_bgm.data.scores import frame_hashes, thumbnails

    hashes = frame_hashes(thumbnails(torch.from_numpy(np.stack(frames))))
    assert len(hashes) == len(frames), "a blank frame among the photographs"
    return hashes


def ours_from_thumbnails(frames: list[np.ndarray]):
    """Ours as preparation pays for it: the 32x32 thumbnails are made once for the picture scores
    (motion, black, blank), so the hash costs only the DCTs."""
    from video_bgm.data.scores import frame_hashes, thumbnails

    thumbs = thumbnails(torch.from_numpy(np.stack(frames)))
    return lambda _: frame_hashes(thumbs)


def imagehash_fn(name: str):
    import imagehash
    from PIL import Image

    fn = getattr(imagehash, name)

    def hashes(frames):
        return [int(str(fn(Image.fromarray(f))), 16) for f in frames]
    return hashes


def distance(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


def best_time(fn, frames, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(frames)
        best = min(best, time.perf_counter() - start)
    return best / len(frames)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threshold", type=int, default=8, help="bits (default 8, preparation's --hash-distance)")
    args = p.parse_args(argv)
    try:
        import imagehash  # noqa: F401
    except ImportError:
        raise SystemExit("this benchmark compares with imagehash: pip install imagehash") from None

    photos = photographs()
    groups = [frames_of(photo) for photo in photos]
    frames = [f for g in groups for f in g]
    owner = [i for i, g in enumerate(groups) for _ in g]
    rng = np.random.default_rng(0)
    copies = {"re-uploaded copy": [reuploaded(f, rng) for f in frames], "re-framed copy": [reframed(f) for f in frames]}
    print(f"{len(frames)} frames ({SIZE[0]}x{SIZE[1]}) from {len(photos)} photographs: "
          + ", ".join(p.name for p in photos))

    methods = {"ours (pHash, scipy)": ours, "imagehash.phash": imagehash_fn("phash"),
               "imagehash.dhash": imagehash_fn("dhash"), "imagehash.average_hash": imagehash_fn("average_hash")}
    decisions, seconds = {}, {}
    print(f"\n{'hash':24s} {'pairs':22s} {'median':>6s} {'5%':>4s} {'95%':>4s} {'<= ' + str(args.threshold):>7s}")
    for name, fn in methods.items():
        h = fn(frames)
        kinds = {kind: [distance(a, b) for a, b in zip(h, fn(c))] for kind, c in copies.items()}
        grid_next = [k + 1 for k in range(len(frames) - 1) if owner[k + 1] == owner[k] and (k + 1) % 4]
        kinds["next crop, same photo"] = [distance(h[k - 1], h[k]) for k in grid_next]
        kinds["other photographs"] = [distance(h[a], h[b]) for a in range(len(h)) for b in range(a + 1, len(h))
                                      if owner[a] != owner[b]]
        decisions[name] = np.concatenate([np.asarray(v) <= args.threshold for v in kinds.values()])
        for kind, values in kinds.items():
            v = np.asarray(values)
            print(f"{name:24s} {kind:22s} {np.median(v):6.0f} {np.percentile(v, 5):4.0f} {np.percentile(v, 95):4.0f} "
                  f"{(v <= args.threshold).mean():7.1%}")
        seconds[name] = best_time(fn, frames)
    seconds["ours, thumbnails shared"] = best_time(ours_from_thumbnails(frames), frames)
    reference = decisions["imagehash.phash"]
    print(f"\n{'hash':24s} {'agrees with imagehash.phash':>28s} {'time per frame vs ours':>24s}")
    for name in seconds:
        agrees = f"{(decisions[name] == reference).mean():.1%}" if name in decisions else "(the same hashes)"
        print(f"{name:24s} {agrees:>28s} {seconds[name] / seconds['ours (pHash, scipy)']:23.2f}x")


if __name__ == "__main__":
    main()
