"""One evaluation: generate music for the reference clips (or read it), score it, write the report.

Systems scored side by side (``generated/<system>/<id>.take<k>.wav`` under the output folder):
- ``model``: the video model under test (``--model``);
- ``baseline-<name>``: each ``--baseline-model`` (e.g. a thesis checkpoint), generated the same way;
- ``musicgen-unconditional``: the same MusicGen with its null condition (no video, no text);
- ``musicgen-text``: the same MusicGen with a fixed generic prompt (T5 embeddings, projected);
- ``reference``: the reference music itself, where a number has a meaning for it.

Each piece is generated with seed ``seed + 1000 * clip index + take``, so a re-run with the same
settings finds its pieces already written (``settings.json`` beside them) and only scores;
embeddings and EnCodec codes are cached by file content, so only what changed is recomputed.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import media
from ..config import DEFAULT_WINDOW, GenerationParams
from ..data.cache import FeatureCache, prepare_features
from ..data.clips import Clip, Skipped
from ..data.segments import SegmentDataset
from ..errors import MediaError, ModelError, UserInputError
from ..loudness import limit_peak
from ..objective import conditioning_losses
from ..pipeline import VideoBGM, resolve_device
from . import correspondence, diversity, manifold, protocols, rhythm, suite
from .data import ReferenceSet, has_video, load_reference, read_generated
from . import DEFAULT_CLAP
from .embeddings import ClapEmbedder, EmbeddingCache, EncodecEmbedder
from .fad import fad


@dataclass
class EvalOptions:
    out: str
    model: str | None = None
    baseline_models: list[str] = field(default_factory=list)
    data: str | None = None
    split: str | None = None
    generated: list[str] = field(default_factory=list)
    reference: str | None = None
    takes: int = 2
    seconds: float = 10.0               # music per clip (generated, and reference crop)
    segment_seconds: float | None = None  # conditioning gain segment (default: the run's, else seconds)
    seed: int = 0
    guidance_scale: float = 3.0
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    baseline_prompt: str = "background music"
    musicgen_baselines: bool = True
    caption_prompts: bool = False
    clap: str | None = DEFAULT_CLAP     # None: no CLAP metrics
    metrics: dict[str, bool | None] = field(default_factory=dict)  # suite.METRICS by name; None/absent: where cached
    protocol: str | None = None         # protocols.PROTOCOLS: a benchmark's settings and columns
    musicgen: str | None = None         # EnCodec/judge MusicGen for score-only runs without --model
    cache_dir: str | None = None
    training_log: str | None = None
    device: str = "auto"
    batch_size: int = 8
    case_study: int = 3
    show_progress: bool = True

    def validate(self) -> None:
        if self.generated and (self.data is None and self.reference is None):
            raise UserInputError("--generated needs --reference (or --data) to compare with")
        if not self.generated and not self.model:
            raise UserInputError("give --model (generate and score) or --generated with --reference (score only)")
        if not self.generated and self.data is None:
            raise UserInputError("--model needs --data: the clips to generate music for")
        if self.data is not None and self.reference is not None:
            raise UserInputError("give --data or --reference, not both")
        if self.takes < 1:
            raise UserInputError(f"--takes: must be >= 1, got {self.takes}")
        if not 0 < self.seconds <= DEFAULT_WINDOW:  # one window: evaluation batches clips in one pass
            raise UserInputError(f"--seconds: must be in (0, {DEFAULT_WINDOW:g}], got {self.seconds}")
        if self.batch_size < 1:
            raise UserInputError(f"--batch-size: must be >= 1, got {self.batch_size}")
        unknown = sorted(set(self.metrics) - set(suite.METRICS))
        if unknown:
            raise UserInputError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(suite.METRICS)}")
        if self.protocol is not None:
            try:
                protocol = protocols.lookup(self.protocol)
            except ValueError as err:
                raise UserInputError(f"--protocol: {err}") from None
            if self.seconds != protocol.seconds:
                raise UserInputError(f"--protocol {protocol.name} scores {protocol.seconds:g} s per clip; "
                                     f"leave out --seconds (got {self.seconds:g})")
        try:
            GenerationParams(guidance_scale=self.guidance_scale, temperature=self.temperature, top_k=self.top_k,
                             top_p=self.top_p).validate()
        except ValueError as err:
            raise UserInputError(f"--{str(err).replace('_', '-')}") from None


def with_protocol(options: EvalOptions, name: str) -> EvalOptions:
    """``options`` set up as benchmark ``name`` fixes them: its clip length, pieces per video, and metrics
    (those the user turned off explicitly stay off; their columns are then empty)."""
    protocol = protocols.lookup(name)
    metrics = {**{m: True for m in protocol.metrics}, **{k: v for k, v in options.metrics.items() if v is not None}}
    return replace(options, protocol=name, seconds=protocol.seconds, takes=protocol.takes, metrics=metrics)


@dataclass
class System:
    slug: str                           # folder name and key in metrics.json
    name: str                           # what the report calls it
    kind: str                           # "video model", "musicgen", "given", "reference"
    model: VideoBGM | None = None       # the video model that generated it (and judges its retrieval)
    pieces: dict[str, list[Path]] = field(default_factory=dict)  # clip id -> takes
    settings: dict = field(default_factory=dict)


def log(text: str) -> None:
    tqdm.write(text, file=sys.stderr)


def evaluate(options: EvalOptions) -> dict:
    """Run the whole evaluation; returns the metrics written to ``<out>/metrics.json``."""
    from .report import write_report

    options.validate()
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(options.cache_dir) if options.cache_dir else out / "cache"
    device = resolve_device(options.device)
    reference = load_reference(options.data if options.data is not None else options.reference, options.split)
    skipped = list(reference.skipped)
    for s in skipped:
        log(f"skipping {s.what}: {s.why}")
    protocol = protocols.lookup(options.protocol) if options.protocol else None
    if protocol and protocol.clips and len(reference.clips) != protocol.clips:
        log(f"warning: {protocol.title} has {protocol.clips} clips, this reference {len(reference.clips)}: "
            f"its numbers are not comparable with the published ones")

    model = VideoBGM.from_pretrained(options.model, device=device) if options.model else None
    baselines = [(ref, VideoBGM.from_pretrained(ref, device=device)) for ref in options.baseline_models]
    musicgen = model.musicgen if model else None
    if musicgen is None and options.musicgen:
        from ..musicgen import MusicGen
        from ..refs import resolve_reference

        musicgen = MusicGen.from_pretrained(resolve_reference(options.musicgen, None, "--musicgen"), device=device)
    if musicgen is None:
        raise UserInputError("score-only runs need --musicgen (its EnCodec embeds the music) or --model")

    # Every model the scores need loads before anything is generated: a missing one fails in seconds.
    embedders = {"encodec": EncodecEmbedder(musicgen)}
    if options.clap:
        try:
            embedders["clap"] = ClapEmbedder(options.clap, device=device)
        except ModelError as err:
            raise ModelError(err.model, f"{err.problem}; or leave the CLAP metrics out with --no-clap") from None
    classifiers, scorers = {}, {}  # PaSST for the label KL; ImageBind for the video-music score
    for name in suite.selected(options.metrics):
        metric = suite.METRICS[name]
        try:
            built = metric.build(device, cache)
        except ModelError as err:
            raise ModelError(err.model, f"{err.problem}; or leave it out with --no-{name}") from None
        {"fad": embedders, "kl": classifiers, "video": scorers}[metric.kind][name] = built

    systems: list[System] = []
    if options.generated:
        for folder in options.generated:
            for name, pieces in read_generated(folder).items():
                systems.append(System(_slug(name), name, "given", model, pieces))
    else:
        systems = _generate_all(options, reference, model, baselines, out / "generated")

    store = EmbeddingCache(cache)

    ref_clips, ref_embeddings = _embed_reference(reference, {**embedders, **classifiers}, store, options.seconds,
                                                 skipped)
    results = {}
    for system in systems:
        results[system.slug] = _score_system(system, ref_embeddings, embedders, store, options, reference)
        results[system.slug].update(_label_kl(system.pieces, ref_embeddings, classifiers, store, options.seconds))
    results["reference"] = _score_reference(ref_clips, ref_embeddings, embedders, store, options, reference)

    video_clips = [c for c in ref_clips if has_video(c)]
    for name, scorer in scorers.items():  # video-music correspondence by a joint embedding (ImageBind)
        videos = {c.id: scorer.embed_video(c.video, options.seconds) for c in video_clips}  # once, for every system
        for system in systems:
            results[system.slug][name] = _video_music_score(scorer, system.pieces, videos, options.seconds)
        results["reference"][name] = _video_music_score(scorer, {c.id: [c.audio] for c in video_clips}, videos,
                                                        options.seconds)

    # Rhythm: every system's beats against the reference music's and the video's own cuts.
    cuts = rhythm.video_cuts(video_clips, options.seconds, log=log)
    ref_beats = rhythm.reference_beats(ref_clips, options.seconds)
    for system in systems:
        results[system.slug]["rhythm"] = rhythm.score(system.pieces, cuts, ref_beats, options.seconds)
    results["reference"]["rhythm"] = rhythm.score({c.id: [c.audio] for c in ref_clips}, cuts, None, options.seconds)

    # Correspondence: the video models judge the music by their conditioning likelihood.
    judges = ([("model", model)] if model else []) + [(f"baseline-{_slug(Path(r).name or r)}", m) for r, m in baselines]
    conditioning = {}
    segment = options.segment_seconds or reference.segment_seconds or options.seconds
    for slug, judge in judges:
        conditioning[slug] = _reference_gain(judge, video_clips, cache, segment, options, skipped)
    if model is not None or baselines:
        for system in systems:
            judge = system.model or model
            if judge is not None:
                results[system.slug]["retrieval"] = _retrieval(judge, system.pieces, video_clips, cache, options,
                                                               skipped, judge_name=_judge_name(judge, model))
        if model is not None and video_clips:
            reference_pieces = {c.id: [c.audio] for c in video_clips}
            results["reference"]["retrieval"] = _retrieval(model, reference_pieces, video_clips, cache, options,
                                                            skipped, judge_name="model")

    log_path = Path(options.training_log) if options.training_log else reference.training_log or _model_log(options.model)
    metrics = {
        "settings": {k: v for k, v in asdict(options).items() if k not in ("show_progress",)},
        "reference": {**reference.source, "clips": len(ref_clips), "with_video": len(video_clips),
                      "captions": len(reference.captions()), "seconds": options.seconds},
        "embedding_models": {name: e.settings() for name, e in embedders.items()},
        "classifiers": {name: c.settings() for name, c in classifiers.items()},
        "video_music_models": {name: m.settings() for name, m in scorers.items()},
        "systems": {s.slug: {"name": s.name, "kind": s.kind, **s.settings, **results[s.slug]} for s in systems},
        "conditioning": {slug: {"segment_seconds": segment, **values} for slug, values in conditioning.items()},
        "skipped": [{"what": s.what, "why": s.why} for s in skipped],
        "protocol": protocol.name if protocol else None,
        "training_log": str(log_path) if log_path else None,
        "embeddings_computed": store.computed + sum(scorer.computed for scorer in scorers.values()),
    }
    metrics["systems"]["reference"] = {"name": "reference music", "kind": "reference", **results["reference"]}
    write_report(out, metrics, systems, ref_clips, log_path, options)
    return metrics


# --- generation ------------------------------------------------------------------------------
def _generate_all(options: EvalOptions, reference: ReferenceSet, model: VideoBGM,
                  baselines: list[tuple[str, VideoBGM]], folder: Path) -> list[System]:
    clips = reference.with_video()
    if not clips:
        raise UserInputError(f"{options.data}: no videos to generate music for")
    systems = [System("model", f"model ({Path(options.model).name or options.model})", "video model", model)]
    for ref, baseline in baselines:
        systems.append(System(f"baseline-{_slug(Path(ref).name or ref)}", f"baseline ({Path(ref).name or ref})",
                              "video model", baseline))
    if options.musicgen_baselines:
        systems.append(System("musicgen-unconditional", "MusicGen, unconditional", "musicgen"))
        systems.append(System("musicgen-text", f'MusicGen, text "{options.baseline_prompt}"', "musicgen"))
    params = {"seconds": options.seconds, "seed": options.seed, "guidance_scale": options.guidance_scale,
              "temperature": options.temperature, "top_k": options.top_k, "top_p": options.top_p}
    for system in systems:
        ref = {"model": options.model}.get(system.slug) or next(
            (r for r, m in baselines if m is system.model), None)
        settings = {"system": system.slug, "model": ref, "musicgen": model.musicgen.name, **params,
                    "caption_prompts": options.caption_prompts and system.kind == "video model",
                    **({"prompt": options.baseline_prompt} if system.slug == "musicgen-text" else {}),
                    **({"guidance_scale": 1.0} if system.slug == "musicgen-unconditional" else {})}
        system.settings = {"generation": settings}
        _generate_system(system, clips, settings, folder / system.slug, model, options)
    return systems


def _generate_system(system: System, clips: list[Clip], settings: dict, folder: Path, model: VideoBGM,
                     options: EvalOptions) -> None:
    """Write every take not already written with these settings."""
    folder.mkdir(parents=True, exist_ok=True)
    settings_file = folder / "settings.json"
    if settings_file.is_file() and json.loads(settings_file.read_text()) != settings:
        for old in folder.rglob("*.take*.wav"):  # made with other settings: not comparable
            old.unlink()
    settings_file.write_text(json.dumps(settings, indent=1) + "\n")
    todo = [(i, c, k) for i, c in enumerate(clips) for k in range(options.takes)
            if not (folder / f"{c.id}.take{k}.wav").is_file()]
    bar = tqdm(total=len(todo), desc=f"generating {system.slug}", unit="piece", disable=not options.show_progress,
               file=sys.stderr, dynamic_ncols=True)
    for i, clip, take in todo:
        seed = options.seed + 1000 * i + take
        target = folder / f"{clip.id}.take{take}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            audio, rate = _generate_piece(system, clip, seed, settings, model, options)
        except MediaError as err:
            bar.write(f"skipping {clip.id}: {err}", file=sys.stderr)
            continue
        media.write_wav(target, audio, rate)
        bar.update()
    bar.close()
    system.pieces = {c.id: [folder / f"{c.id}.take{k}.wav" for k in range(options.takes)
                            if (folder / f"{c.id}.take{k}.wav").is_file()] for c in clips}
    system.pieces = {i: takes for i, takes in system.pieces.items() if takes}


def _generate_piece(system: System, clip: Clip, seed: int, settings: dict, model: VideoBGM,
                    options: EvalOptions) -> tuple[np.ndarray, int]:
    info = media.probe_video(clip.video)
    duration = min(options.seconds, info.duration)
    if system.model is not None:
        prompt = clip.caption if settings["caption_prompts"] else None
        params = GenerationParams(guidance_scale=options.guidance_scale, temperature=options.temperature,
                                  top_k=options.top_k, top_p=options.top_p, duration=duration, seed=seed, prompt=prompt)
        result = system.model.generate(clip.video, params, info=info)
        return result.audio, result.sample_rate
    # MusicGen baselines: the same MusicGen, no video.
    mg = model.musicgen
    if system.slug == "musicgen-text":
        text, mask = mg.encode_text([options.baseline_prompt])
        condition, guidance = mg.project_text(text), options.guidance_scale
    else:  # the null condition; guidance would mix it with itself, so it is off
        condition = torch.zeros(1, 1, mg.decoder_dim, device=mg.device)
        mask, guidance = torch.zeros(1, 1, dtype=torch.bool, device=mg.device), 1.0
    generator = torch.Generator(mg.device).manual_seed(seed)
    codes = mg.generate_codes(condition, mask, math.ceil(duration * mg.frame_rate), guidance_scale=guidance,
                              temperature=options.temperature, top_k=options.top_k, top_p=options.top_p,
                              generator=generator)
    audio = mg.decode(codes)[0].float().cpu().numpy()[:, : round(duration * mg.sample_rate)]
    return limit_peak(audio), mg.sample_rate


# --- scoring ---------------------------------------------------------------------------------
def _embed_reference(reference: ReferenceSet, embedders: dict, store: EmbeddingCache, seconds: float,
                     skipped: list[Skipped]) -> tuple[list[Clip], dict[str, dict[str, np.ndarray]]]:
    """Reference music embeddings {embedder: {clip id: [n, D]}}; clips whose music cannot be read are skipped."""
    usable, embeddings = [], {name: {} for name in embedders}
    for clip in reference.clips:
        try:
            values = {name: store.embed_file(clip.audio, e, seconds) for name, e in embedders.items()}
        except MediaError as err:
            skipped.append(Skipped(clip.id, f"reference music: {err}"))
            log(f"skipping {clip.id}: reference music: {err}")
            continue
        usable.append(clip)
        for name, value in values.items():
            embeddings[name][clip.id] = value
    if not usable:
        raise UserInputError("no reference music could be read")
    return usable, embeddings


def _score_system(system: System, ref_embeddings: dict, embedders: dict, store: EmbeddingCache,
                  options: EvalOptions, reference: ReferenceSet) -> dict:
    result = {"pieces": sum(len(t) for t in system.pieces.values()), "videos": len(system.pieces),
              "fad": {}, "diversity": {}, "prdc": {}}
    unknown = sorted(set(system.pieces) - {c.id for c in reference.clips})
    if unknown:
        result["unmatched_ids"] = unknown[:20]
    for name, embedder in embedders.items():
        takes = {i: [store.embed_file(p, embedder, options.seconds) for p in paths] for i, paths in system.pieces.items()}
        first = [t[0] for t in takes.values()]
        reference_set = list(ref_embeddings[name].values())
        result["fad"][name] = _fad_or_none(first, reference_set)
        pieces = np.stack([diversity.piece_vector(e) for e in first]) if first else None  # one vector per piece
        result["prdc"][name] = manifold.prdc(np.stack([diversity.piece_vector(e) for e in reference_set]),
                                             pieces) if first else None
        result["diversity"][name] = {
            "across_videos": diversity.mean_pairwise_distance(pieces) if len(first) > 1 else None,
            "across_takes": diversity.across_takes(
                [np.stack([diversity.piece_vector(e) for e in t]) for t in takes.values()]),
        }
        if name == "clap":
            result["clap_text_score"] = _clap_text_score(embedder, {i: t[0] for i, t in takes.items()}, reference)
    return result


def _score_reference(clips: list[Clip], ref_embeddings: dict, embedders: dict, store: EmbeddingCache,
                     options: EvalOptions, reference: ReferenceSet) -> dict:
    result = {"pieces": len(clips), "videos": len(clips), "diversity": {}}
    for name in embedders:
        vectors = [diversity.piece_vector(e) for e in ref_embeddings[name].values()]
        result["diversity"][name] = {"across_videos": diversity.mean_pairwise_distance(np.stack(vectors))}
    if "clap" in embedders:
        result["clap_text_score"] = _clap_text_score(embedders["clap"], ref_embeddings["clap"], reference)
    return result


def _label_kl(pieces: dict[str, list[Path]], ref_embeddings: dict, classifiers: dict, store: EmbeddingCache,
              seconds: float) -> dict:
    """{"kl": {classifier: mean KL over the pieces (take 0) whose clip has reference music, or None}}."""
    from .kld import mean_kl

    out = {}
    for name, classifier in classifiers.items():
        pairs = [(store.embed_file(takes[0], classifier, seconds), ref_embeddings[name][i])
                 for i, takes in pieces.items() if i in ref_embeddings[name]]
        try:
            out[name] = mean_kl(pairs)
        except ValueError:  # no pairs, or none longer than the classifier's shortest segment
            out[name] = None
    return {"kl": out} if out else {}


def _video_music_score(scorer, pieces: dict[str, list[Path]], video_embeddings: dict[str, np.ndarray],
                       seconds: float) -> dict | None:
    """Mean score of each piece (take 0) with its own video, and with the other videos (the chance level)."""
    ids = [i for i in pieces if i in video_embeddings]
    if not ids:
        return None
    videos = np.stack([video_embeddings[i] for i in ids])
    music = np.stack([scorer.embed_audio(pieces[i][0], seconds) for i in ids])
    matrix = np.array([[scorer.score(v, m) for v in videos] for m in music])  # [piece, video]
    others = matrix[~np.eye(len(ids), dtype=bool)]
    return {"score": float(np.diag(matrix).mean()), "other_videos": float(others.mean()) if len(ids) > 1 else None,
            "pieces": len(ids)}


def _fad_or_none(generated: list[np.ndarray], reference: list[np.ndarray]) -> float | None:
    a, b = np.concatenate(generated) if generated else None, np.concatenate(reference)
    if a is None or len(a) < 2 or len(b) < 2:
        return None
    return fad(a, b)


def _clap_text_score(clap: ClapEmbedder, pieces: dict[str, np.ndarray], reference: ReferenceSet) -> float | None:
    """Mean cosine similarity of each captioned piece's CLAP audio embedding (mean of its windows,
    renormalised) with its caption's CLAP text embedding; None without captions."""
    captions = reference.captions()
    ids = [i for i in pieces if i in captions]
    if not ids:
        return None
    text = clap.embed_text([captions[i] for i in ids])
    audio = np.stack([diversity.piece_vector(pieces[i]) for i in ids])
    audio /= np.maximum(np.linalg.norm(audio, axis=1, keepdims=True), 1e-12)
    return float((audio * text).sum(axis=1).mean())


# --- correspondence --------------------------------------------------------------------------
def _cached(judge: VideoBGM, clips: list[Clip], cache: Path, options: EvalOptions, skipped: list[Skipped]):
    store = FeatureCache(cache, judge.config, judge.musicgen)
    ready, failed = prepare_features(clips, store, judge.frame_encoder, judge.musicgen, judge.config.fps,
                                     show_progress=False)
    for s in failed:
        skipped.append(s)
    return ready


def _reference_gain(judge: VideoBGM, clips: list[Clip], cache: Path, segment: float, options: EvalOptions,
                    skipped: list[Skipped]) -> dict | None:
    ready = _cached(judge, clips, cache, options, skipped)
    if not ready:
        return None
    dataset = SegmentDataset(ready, segment, judge.config.fps, judge.musicgen.frame_rate)
    return conditioning_losses(judge, dataset, options.batch_size, judge.device, timeline=True)


def _retrieval(judge: VideoBGM, pieces: dict[str, list[Path]], clips: list[Clip], cache: Path,
               options: EvalOptions, skipped: list[Skipped], judge_name: str) -> dict | None:
    """Rank of each piece's (take 0) own video among all the videos, by the judge's CE."""
    by_id = {c.id: c for c in clips}
    pairs = [Clip(i, by_id[i].video, takes[0]) for i, takes in pieces.items() if i in by_id]
    if len(pairs) < 2:
        return None
    ready = _cached(judge, pairs, cache, options, skipped)
    if len(ready) < 2:
        return None
    dataset = SegmentDataset(ready, options.seconds, judge.config.fps, judge.musicgen.frame_rate)
    items = [dataset[i] for i in range(len(dataset))]
    stack = lambda key: torch.stack([item[key] for item in items])  # noqa: E731
    matrix = correspondence.ce_matrix(judge, stack("features"), stack("features_mask"), stack("codes"),
                                      stack("codes_mask"), options.batch_size)
    null = correspondence.null_losses(judge.musicgen, stack("codes"), stack("codes_mask"), options.batch_size)
    return {"judge": judge_name, **correspondence.retrieval_metrics(matrix), "null_loss": float(null.mean()),
            "ids": [c.clip.id for c in ready]}


def _judge_name(judge: VideoBGM, model: VideoBGM | None) -> str:
    return "model" if judge is model else "its own video encoder"


def _model_log(model_ref: str | None) -> Path | None:
    """A model folder written by training sits in the run folder, beside metrics.jsonl."""
    if not model_ref:
        return None
    candidate = Path(model_ref).expanduser().resolve().parent / "metrics.jsonl"
    return candidate if candidate.is_file() else None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "system"
