"""Benchmark recipes (``evaluate.py --protocol NAME``): a benchmark's clip length, pieces and metrics, and a
table in its published columns, so that a user who has the benchmark's files gets numbers laid out as the
papers print them.

What each recipe fixes comes from the benchmark's papers and released code (the README's "Benchmark
protocols" lists the sources, and which published numbers we could only read second-hand):

- ``v2m-bench``: VidMuse's V2M-bench (Tian et al., CVPR 2025, arXiv 2406.04321): 300 human-curated
  video-music pairs; VidMuse's released config generates and scores 30 s at 32 kHz; its code scores FAD on
  VGGish at 16 kHz and KL on PaSST labels (audiocraft's metric); peers on the same bench (Diff-V2M, GVMGen)
  add FD on PANNs, density/coverage and the ImageBind score.
- ``symmv``: SymMV's test clips (Zhuo et al., V-MusProd, ICCV 2023) as audio-domain papers score them
  (Diff-V2M: 30 s clips; FAD, FD, KL, density, coverage, ImageBind score). SymMV publishes no split: the
  clips are the user's.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    header: str                         # as the papers print it, with the direction
    path: tuple[str, ...]               # keys into a system's entry of metrics.json
    digits: int = 3


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    seconds: float                      # music per clip, generated and reference
    takes: int                          # pieces per video (published tables: one)
    clips: int | None                   # the benchmark's number of pairs, when it states one
    metrics: tuple[str, ...]            # suite.METRICS it turns on
    columns: tuple[Column, ...]
    note: str                           # what is comparable, shown under the table


_FAD_VGGISH = Column("FAD (VGGish) ↓", ("fad", "vggish"))
_FD_PANNS = Column("FD (PANNs) ↓", ("fad", "panns"))
_KL_PASST = Column("KL (PaSST) ↓", ("kl", "passt"))
_DENSITY = Column("Density ↑", ("prdc", "clap", "density"))
_COVERAGE = Column("Coverage ↑", ("prdc", "clap", "coverage"))
_IB = Column("IB ↑", ("imagebind", "score"))

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("v2m-bench", "V2M-bench (VidMuse)", seconds=30.0, takes=1, clips=300,
             metrics=("vggish", "panns", "passt", "imagebind"),
             columns=(_KL_PASST, _FAD_VGGISH, _FD_PANNS, _DENSITY, _COVERAGE, _IB),
             note="Comparable with published V2M-bench rows only on all 300 pairs, 30 s each, one piece per video; "
                  "FAD as frechet_audio_distance's VGGish (no PCA), KL as audiocraft's PaSST metric, IB as the raw "
                  "cosine (papers that print ×100 scale it). Density/coverage on CLAP (Diff-V2M: LAION-CLAP); "
                  "FD on PANNs CNN14 at 32 kHz (Diff-V2M's FD comes from audioldm_eval at 16 kHz: not the same)."),
    Protocol("symmv", "SymMV test clips (audio, 30 s)", seconds=30.0, takes=1, clips=None,
             metrics=("vggish", "panns", "passt", "imagebind"),
             columns=(_FAD_VGGISH, _FD_PANNS, _KL_PASST, _DENSITY, _COVERAGE, _IB),
             note="SymMV publishes no test split: numbers are comparable only with a paper that used the same clips. "
                  "Diff-V2M's published table pools SymMV with BGM909, and its KL is on PANNs labels, not PaSST."),
)}


def lookup(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def value(system: dict, column: Column):
    """A system's number for a column, or None where it was not computed."""
    node = system
    for key in column.path:
        if not isinstance(node, dict) or node.get(key) is None:
            return None
        node = node[key]
    return node
