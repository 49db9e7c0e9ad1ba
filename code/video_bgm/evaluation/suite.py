"""The published metrics an evaluation can add, each a named option (``--vggish``, ``--no-passt``, ...).

Each is on by default only where its weights are already cached, so a run never stops for a download
it did not ask for and the default report is the same offline and online for the same caches; asked
for by name (``--vggish``) a metric fetches its weights on first use, and offline that is one line
naming the file. A protocol (``--protocol``) asks for the metrics its benchmark publishes.

Kinds: ``fad`` embeddings get FAD, diversity and density/coverage like CLAP and EnCodec; ``kl`` is
PaSST's label KL per (generated, reference) pair; ``video`` is the ImageBind video-music score.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from . import CLAP_MUSIC


@dataclass(frozen=True)
class Metric:
    name: str                           # the option (--NAME / --no-NAME) and the key in metrics.json
    kind: str                           # "fad", "kl" or "video"
    help: str
    target: str                         # "module:Class" in video_bgm.evaluation, imported only when used

    def load(self) -> type:
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), cls)

    def is_cached(self) -> bool:
        """Its weights are on this machine."""
        return self.load().is_cached()

    def build(self, device, cache_dir):
        """The embedder, classifier or scorer, on ``device``; a scorer keeps its embeddings in ``cache_dir``."""
        return self.load()(device=device, **({"cache_dir": cache_dir} if self.kind == "video" else {}))


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("vggish", "fad", "FAD etc. on VGGish embeddings (16 kHz, 0.96 s frames), as frechet_audio_distance",
           "embeddings:VggishEmbedder"),
    Metric("panns", "fad", "FAD etc. on PANNs CNN14 embeddings (32 kHz), as frechet_audio_distance",
           "embeddings:PannsEmbedder"),
    Metric("clap-music", "fad", f"FAD etc. on CLAP-music embeddings ({CLAP_MUSIC}, 10 s windows every 1 s), as fadtk",
           "embeddings:ClapMusicEmbedder"),
    Metric("passt", "kl", "KL divergence of PaSST's AudioSet labels, generated vs reference, as audiocraft",
           "kld:PasstClassifier"),
    Metric("imagebind", "video", "ImageBind score: cosine of ImageBind's video and music embeddings",
           "imagebind:ImageBindScorer"),
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
