"""The preparation's summary: ``summary.md`` (kept and dropped clips per reason, the split, the
thresholds) and a PNG histogram per score with its threshold drawn."""

from __future__ import annotations

import io
from pathlib import Path

from ..outputs import write_atomic

# score -> (the setting holding its threshold, what it measures)
SCORES = {
    "loudness": ("min_loudness", "music loudness (LUFS)"),
    "vocal_share": ("max_vocal_share", "vocals' share of the energy"),
    "motion": ("min_motion", "mean frame difference"),
    "black_share": ("max_black_share", "share of black frames"),
    "blank_share": ("max_blank_share", "share of blank frames"),
    "duplicate_share": ("max_duplicate_share", "share of frames seen in another source"),
}


def reason_kind(reason: str) -> str:
    """A reason without its details ("near-duplicate of x" -> "near-duplicate")."""
    for kind in ("near-duplicate", "unreadable"):
        if reason.startswith(kind):
            return kind
    return reason


def dropped_counts(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        if r["dropped"] is not None:
            counts[reason_kind(r["dropped"])] = counts.get(reason_kind(r["dropped"]), 0) + 1
    return counts


def write_summary(out: Path, rows: list[dict], settings, unreadable: list[tuple[str, str]], split: dict) -> None:
    kept = [r for r in rows if r["dropped"] is None]
    reasons = dropped_counts(rows)
    seconds = sum(r["end"] - r["start"] for r in kept)
    lines = ["# Dataset preparation", "",
             f"{len({r['source'] for r in rows})} sources, {len(rows)} clips: **{len(kept)} kept** "
             f"({seconds / 3600:.2f} h), {len(rows) - len(kept)} dropped.", "",
             "| dropped because | clips |", "| --- | ---: |"]
    lines += [f"| {reason} | {n} |" for reason, n in sorted(reasons.items(), key=lambda x: -x[1])] or ["| (none) | 0 |"]
    if split:
        lines += ["", "| split | clips | sources |", "| --- | ---: | ---: |"]
        group = {r["id"]: r["group"] for r in kept}
        for name in ("training", "validation", "test"):
            ids = split.get(name, [])
            lines.append(f"| {name} | {len(ids)} | {len({group[i] for i in ids})} |")
    if unreadable:
        lines += ["", f"{len(unreadable)} sources could not be read:", ""]
        lines += [f"- {why}" for _, why in unreadable]  # each reason names its file
    lines += ["", "| score | threshold | histogram |", "| --- | ---: | --- |"]
    for score, (setting, what) in SCORES.items():
        values = [r["scores"][score] for r in rows if r["scores"].get(score) is not None]
        if not values:
            continue
        name = f"summary-{score}.png"
        write_atomic(out / name, _histogram(values, getattr(settings, setting), what))
        lines.append(f"| {what} | {setting.replace('_', '-')} = {getattr(settings, setting):g} | ![{score}]({name}) |")
    write_atomic(out / "summary.md", "\n".join(lines) + "\n")


def _histogram(values: list[float], threshold: float, what: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.hist(values, bins=30, color="#4c72b0")
    ax.axvline(threshold, color="#c44e52", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_xlabel(what)
    ax.set_ylabel("clips")
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})  # no version stamp: reruns write the same bytes
    plt.close(fig)
    return buffer.getvalue()
