"""The published metrics an evaluation can add, each a named option (``--vggish``, ``--no-passt``, ...).

Each is on by default only where its weights are already cached, so a run never stops for a download
it did not ask for and the default report is the same offline and online for the same caches; asked
for by name (``--vggish``) a metric fetches its weights on first use, and offline that is one line
naming the file. A protocol (``--protocol``) asks for the metrics its benchmark publishes.

Kinds: ``fad`` embeddings get FAD, diversity and density/coverage like CLAP and EnCodec; ``kl`` is
PaSST's label KL per (generated, reference) pair; ``video`` is the ImageBind video-music score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import CLAP_MUSIC


@dataclass(frozen=True)
class Metric:
    name: str                           # the option (--NAME / --no-NAME) and the key in metrics.json
    kind: str                           # "fad", "kl" or "video"
    help: str
    is_cached: Callable[[], bool]       # its weights are on this machine
    build: Callable[[object, object], object]  # (device, cache folder) -> the embedder / classifier / scorer


def _vggish_cached() -> bool:
    from .embeddings import VggishEmbedder

    return VggishEmbedder.is_cached()


def _vggish(device, cache):
    from .embeddings import VggishEmbedder

    return VggishEmbedder(device=device)


def _panns_cached() -> bool:
    from .embeddings import PannsEmbedder

    return PannsEmbedder.is_cached()


def _panns(device, cache):
    from .embeddings import PannsEmbedder

    return PannsEmbedder(device=device)


def _clap_music_cached() -> bool:
    from ..hub import is_cached

    return is_cached(CLAP_MUSIC)


def _clap_music(device, cache):
    from .embeddings import ClapMusicEmbedder

    return ClapMusicEmbedder(device=device)


def _passt_cached() -> bool:
    from .kld import PasstClassifier

    return PasstClassifier.is_cached()


def _passt(device, cache):
    from .kld import PasstClassifier

    return PasstClassifier(device=device)


def _imagebind_cached() -> bool:
    from .imagebind import ImageBindScorer

    return ImageBindScorer.is_cached()


def _imagebind(device, cache):
    from .imagebind import ImageBindScorer

    return ImageBindScorer(device=device, cache_dir=cache)


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("vggish", "fad", "FAD etc. on VGGish embeddings (16 kHz, 0.96 s frames), as frechet_audio_distance",
           _vggish_cached, _vggish),
    Metric("panns", "fad", "FAD etc. on PANNs CNN14 embeddings (32 kHz), as frechet_audio_distance",
           _panns_cached, _panns),
    Metric("clap-music", "fad", f"FAD etc. on CLAP-music embeddings ({CLAP_MUSIC}, 10 s windows every 1 s), as fadtk",
           _clap_music_cached, _clap_music),
    Metric("passt", "kl", "KL divergence of PaSST's AudioSet labels, generated vs reference, as audiocraft",
           _passt_cached, _passt),
    Metric("imagebind", "video", "ImageBind score: cosine of ImageBind's video and music embeddings",
           _imagebind_cached, _imagebind),
)}


def selected(choices: dict[str, bool | None]) -> list[str]:
    """The metrics to compute: those asked for (True), and those left to default (None) whose weights are cached."""
    unknown = sorted(set(choices) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    out = []
    for name, metric in METRICS.items():
        wanted = choices.get(name)
        if wanted or (wanted is None and metric.is_cached()):
            out.append(name)
    return out
