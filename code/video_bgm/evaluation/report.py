"""The report: ``metrics.json`` (every number and setting), ``index.html`` and ``report.md`` (tables),
and PNG plots (matplotlib, Agg backend: no display needed).

Plots: training/validation loss and conditioning gain from the training run's ``metrics.jsonl``;
one bar chart per metric across systems (chance levels drawn where they exist); and the case
study: for a few clips, frames of the video next to the spectrograms of the reference music and
of each system's first take.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np

from .. import media
from ..outputs import write_atomic
from ..spectrum import frame_centres, power_db
from . import protocols, rhythm

METRICS_NAME = "metrics.json"


def write_report(out: Path, metrics: dict, systems, clips, training_log: Path | None, options) -> None:
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    images = []
    if training_log is not None and training_log.is_file():
        images += loss_curves(training_log, plots / "training_curves.png")
    images += metric_bars(metrics, plots)
    if options.case_study > 0:
        images += case_study(systems, clips, plots / "case_study.png", options.seconds, options.case_study)
    metrics["plots"] = [str(p.relative_to(out)) for p in images]
    _write_text(out / METRICS_NAME, json.dumps(metrics, indent=1, default=_jsonable) + "\n")
    tables = build_tables(metrics)
    _write_text(out / "report.md", render_markdown(metrics, tables))
    _write_text(out / "index.html", render_html(metrics, tables))


def _jsonable(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _write_text(path: Path, text: str) -> None:
    write_atomic(path, text)


# --- tables ----------------------------------------------------------------------------------
def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
    return str(value)


def build_tables(metrics: dict) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, headers, rows, note) for each table of the report."""
    systems = metrics["systems"]
    kinds = list(metrics["embedding_models"])
    classifiers = list(metrics.get("classifiers") or {})
    quality_headers = ["system", "pieces"] + [f"FAD {k} ↓" for k in kinds] + [f"KL {k} ↓" for k in classifiers] \
        + [f"diversity {k}, {w}" for k in kinds for w in ("across videos", "across takes")] + ["CLAP text score ↑"]
    quality = []
    for slug, s in systems.items():
        row = [s["name"], _fmt(s.get("pieces"))] + [_fmt(s.get("fad", {}).get(k)) for k in kinds]
        row += [_fmt((s.get("kl") or {}).get(k)) for k in classifiers]
        row += [_fmt(s["diversity"].get(k, {}).get(w)) for k in kinds for w in ("across_videos", "across_takes")]
        quality.append(row + [_fmt(s.get("clap_text_score"))])
    tables = [("Audio quality and diversity", quality_headers, quality,
               "FAD against the reference music (lower is closer). "
               + ("KL: divergence of the classifier's label distribution of each piece from its reference "
                  "piece's, in nats, mean over pieces (lower is closer). " if classifiers else "")
               + "Diversity: mean pairwise Euclidean distance of the pieces' mean embeddings (scale of each "
                 "embedding model; compare with the reference row). CLAP text score: cosine similarity of music "
                 "and caption.")]
    if metrics.get("protocol"):
        protocol = protocols.lookup(metrics["protocol"])
        rows = [[s["name"]] + [_fmt(protocols.value(s, c), c.digits) for c in protocol.columns] for s in systems.values()]
        tables.insert(0, (f"{protocol.title}: the published columns", ["system"] + [c.header for c in protocol.columns],
                          rows, protocol.note + f" This reference: {metrics['reference']['clips']} clips."))
    for name in metrics.get("video_music_models") or {}:
        rows = [[s["name"], _fmt(s[name]["pieces"]), _fmt(s[name]["score"]), _fmt(s[name]["other_videos"])]
                for s in systems.values() if s.get(name)]
        if rows:
            tables.append((f"Video-music correspondence ({name})", ["system", "pieces", "score ↑", "other videos"],
                           rows, "Cosine similarity of the video's and the music's embeddings, mean over pieces "
                                 "(take 0); 'other videos' pairs each piece with every other clip's video "
                                 "(the chance level). ×100 gives the scale some papers print."))
    measures = ("precision", "recall", "density", "coverage")
    fidelity = [[s["name"], k] + [_fmt(s["prdc"][k][m]) for m in measures]
                for s in systems.values() for k in kinds if (s.get("prdc") or {}).get(k)]
    if fidelity:
        tables.append(("Fidelity and diversity against the reference (Naeem et al. 2020)",
                       ["system", "embedding", "precision ↑", "recall ↑", "density", "coverage ↑"], fidelity,
                       "One sample per piece (its mean embedding); balls reach each sample's 5th nearest neighbour. "
                       "Density near 1 and coverage near 1 for music like the reference; None below 6 pieces."))

    retrieval_headers = ["system", "judge", "videos", "mean rank ↓ (chance)", "recall@1 ↑ (chance)", "MRR ↑ (chance)",
                         "CE own video", "CE other videos", "gain ↑", "CE null"]
    retrieval = []
    for slug, s in systems.items():
        r = s.get("retrieval")
        if r:
            retrieval.append([s["name"], r["judge"], _fmt(r["candidates"]),
                              f"{_fmt(r['mean_rank'], 2)} ({_fmt(r['chance_mean_rank'], 2)})",
                              f"{_fmt(r['recall_at_1'])} ({_fmt(r['chance_recall_at_1'])})",
                              f"{_fmt(r['mrr'])} ({_fmt(r['chance_mrr'])})",
                              _fmt(r["matched_loss"]), _fmt(r["mismatched_loss"]), _fmt(r["gain"]), _fmt(r["null_loss"])])
    if retrieval:
        tables.append(("Video retrieval by conditioning likelihood", retrieval_headers, retrieval,
                       "For each piece, the rank of its own video among all videos by the judge's decoder "
                       "cross-entropy (nats) of the piece under each video's conditioning."))
    tables += rhythm.table(metrics, _fmt)
    conditioning = [[slug, _fmt(v.get("clips")), _fmt(v.get("segment_seconds"), 1), _fmt(v.get("loss")),
                     _fmt(v.get("shuffled_loss")), _fmt(v.get("order_loss")), _fmt(v.get("null_loss")),
                     _fmt(v.get("conditioning_gain")), _fmt(v.get("order_gain"))]
                    for slug, v in metrics["conditioning"].items() if v]
    if conditioning:
        tables.append(("Conditioning gain on the reference pairs",
                       ["video model", "clips", "segment (s)", "CE matched", "CE shuffled", "CE halves swapped",
                        "CE null", "gain ↑", "order gain ↑"],
                       conditioning, "Decoder cross-entropy (nats) of the reference music with its own video, "
                                     "another clip's video, its own video with the two halves swapped in time, and "
                                     "MusicGen's null condition; gain = shuffled − matched, order gain = swapped − "
                                     "matched (0: the conditioning is a summary of the clip, not a timeline). "
                                     "metrics.json has the per-second cross-entropy (timeline)."))
    return tables


def render_markdown(metrics: dict, tables) -> str:
    lines = ["# Evaluation report", "", _summary(metrics), ""]
    for title, headers, rows, note in tables:
        lines += [f"## {title}", "", note, "", "| " + " | ".join(headers) + " |",
                  "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    for plot in metrics.get("plots", []):
        lines += [f"![{Path(plot).stem}]({plot})", ""]
    return "\n".join(lines)


def render_html(metrics: dict, tables) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Evaluation report</title><style>",
             "body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
             "img{max-width:100%}.note{color:#555}</style></head><body>",
             "<h1>Evaluation report</h1>", f"<p>{e(_summary(metrics))}</p>"]
    for title, headers, rows, note in tables:
        parts.append(f"<h2>{e(title)}</h2><p class='note'>{e(note)}</p><table><tr>"
                     + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</table>")
    if metrics.get("plots"):
        parts.append("<h2>Plots</h2>")
        parts += [f"<figure><img src='{e(p)}' alt='{e(Path(p).stem)}'><figcaption>{e(Path(p).stem)}</figcaption></figure>"
                  for p in metrics["plots"]]
    if metrics.get("skipped"):
        parts.append("<h2>Skipped</h2><ul>" + "".join(f"<li>{e(s['what'])}: {e(s['why'])}</li>"
                                                       for s in metrics["skipped"]) + "</ul>")
    parts.append(f"<h2>Settings</h2><pre>{e(json.dumps(metrics['settings'], indent=1))}</pre></body></html>")
    return "\n".join(parts)


def _summary(metrics: dict) -> str:
    ref = metrics["reference"]
    models = ", ".join(f"{k}: {v.get('model') or v.get('weights')}" for k, v in metrics["embedding_models"].items()
                       if v.get("model") or v.get("weights")) or ", ".join(metrics["embedding_models"])
    return (f"{ref['clips']} reference clips ({ref['kind']} {ref['path']}"
            + (f", split {ref['split']}" if ref.get("split") else "")
            + f"), {ref['seconds']:g} s of music each. Embeddings: {models}, "
            + ", ".join(f"{k} via {v.get('musicgen')}" for k, v in metrics["embedding_models"].items() if v.get("musicgen"))
            + ". FAD needs hundreds of pieces to be stable; compare FADs only across the same embedding model.")


# --- plots -----------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curves(log_path: Path, target: Path) -> list[Path]:
    """Training and validation loss, and validation conditioning gain, against the step."""
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    train = [(r["step"], r["loss"]) for r in rows if r.get("split") == "train" and "loss" in r]
    val = [(r["step"], r["loss"]) for r in rows if r.get("split") == "validation" and "loss" in r]
    gain = [(r["step"], r["conditioning_gain"]) for r in rows
            if r.get("split") == "validation" and r.get("conditioning_gain") is not None]
    if not (train or val):
        return []
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for points, label in ((train, "training loss"), (val, "validation loss")):
        if points:
            axes[0].plot(*zip(*points), label=label, marker="." if label.startswith("val") else None)
    axes[0].set(xlabel="step", ylabel="cross-entropy (nats)", title="Loss")
    axes[0].legend()
    if gain:
        axes[1].plot(*zip(*gain), marker=".", color="tab:green")
        axes[1].axhline(0, color="grey", linewidth=0.8)
    axes[1].set(xlabel="step", ylabel="shuffled − matched CE (nats)", title="Validation conditioning gain")
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return [target]


def metric_bars(metrics: dict, folder: Path) -> list[Path]:
    """One bar chart per metric across the systems that have it."""
    systems = metrics["systems"]
    charts = {}
    for kind in metrics["embedding_models"]:
        charts[f"fad_{kind}"] = (f"FAD ({kind}) ↓", {s["name"]: s.get("fad", {}).get(kind) for s in systems.values()}, None)
        for which in ("across_videos", "across_takes"):
            charts[f"diversity_{kind}_{which}"] = (
                f"diversity ({kind}, {which.replace('_', ' ')})",
                {s["name"]: s["diversity"].get(kind, {}).get(which) for s in systems.values()}, None)
    charts["clap_text_score"] = ("CLAP text score ↑", {s["name"]: s.get("clap_text_score") for s in systems.values()}, None)
    retrieval = {s["name"]: s["retrieval"] for s in systems.values() if s.get("retrieval")}
    if retrieval:
        chance = next(iter(retrieval.values()))["chance_mrr"]
        charts["retrieval_mrr"] = ("retrieval MRR ↑ (dashed: chance)", {k: v["mrr"] for k, v in retrieval.items()}, chance)
        charts["retrieval_gain"] = ("CE gain, other videos − own video ↑", {k: v["gain"] for k, v in retrieval.items()}, 0.0)
    charts["conditioning_gain"] = ("conditioning gain on reference pairs ↑",
                                   {k: (v or {}).get("conditioning_gain") for k, v in metrics["conditioning"].items()}, 0.0)
    plt = _pyplot()
    written = []
    for name, (title, values, line) in charts.items():
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            continue
        fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(values) + 1), 3.2))
        ax.bar(range(len(values)), list(values.values()), color="tab:blue")
        ax.set_xticks(range(len(values)), list(values), rotation=20, ha="right", fontsize=8)
        if line is not None:
            ax.axhline(line, color="grey", linestyle="--", linewidth=1)
        ax.set_title(title)
        fig.tight_layout()
        target = folder / f"{name}.png"
        fig.savefig(target, dpi=100)
        plt.close(fig)
        written.append(target)
    return written


def case_study(systems, clips, target: Path, seconds: float, count: int = 3, frames_per_clip: int = 4) -> list[Path]:
    """Rows of ``count`` clips: video frames, then spectrograms of the reference and each system's first take."""
    from .data import has_video

    clips = [c for c in clips if has_video(c)][:count]
    if not clips:
        return []
    columns = [("reference", lambda c: c.audio)] + [
        (s.name, lambda c, s=s: (s.pieces.get(c.id) or [None])[0]) for s in systems]
    plt = _pyplot()
    fig, axes = plt.subplots(len(clips), 1 + len(columns), figsize=(3 * (1 + len(columns)), 2.4 * len(clips)),
                             squeeze=False)
    for row, clip in enumerate(clips):
        info = media.probe_video(clip.video)
        span = min(seconds, info.duration)
        frames, _ = media.sample_frames(clip.video, frames_per_clip / span, info=info, duration=span)
        axes[row, 0].imshow(np.concatenate(list(frames.numpy()[:frames_per_clip]), axis=1))
        axes[row, 0].set_title(clip.id, fontsize=8)
        axes[row, 0].axis("off")
        for col, (name, path_of) in enumerate(columns, start=1):
            ax = axes[row, col]
            path = path_of(clip)
            ax.set_title(name, fontsize=8)
            if path is None:
                ax.axis("off")
                continue
            rate = 32000
            audio = media.decode_audio(path, rate, 1, duration=seconds)[0]
            if len(audio) < 1024:
                ax.axis("off")
                continue
            spec = power_db(audio, frame_centres(len(audio), 256))
            ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=spec.max() - 80,
                      extent=(0, len(audio) / rate, 0, rate / 2000))
            ax.set_xlabel("s", fontsize=7)
            ax.set_ylabel("kHz", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return [target]
