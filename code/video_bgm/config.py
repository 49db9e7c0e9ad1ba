"""Typed, validated configs: what a model folder's ``config.json`` holds, and the sampling options.

Unknown keys, wrong types and impossible values raise ``ValueError`` naming the key, so a typo
in a config never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field

FORMAT_NAME = "video-bgm"
FORMAT_VERSION = 1


def from_dict(cls, data, where: str = ""):
    """Build dataclass ``cls`` from a dict, recursing into nested dataclasses.

    ``where`` prefixes key names in errors (``"temporal.num_layers"``).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where.rstrip('.') or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown key '{where}{unknown[0]}' (known: {', '.join(sorted(fields))})")
    values = {name: _coerce(hints[name], value, f"{where}{name}") for name, value in data.items()}
    return cls(**values)


def _coerce(hint, value, key: str):
    """Check ``value`` against a type hint; ints are accepted for floats."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, key)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[0])
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(repr(v) for v in typing.get_args(hint))
            raise ValueError(f"{key}: {value!r} is not one of {choices}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, f"{key}.")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (type(value) is not hint):
        raise ValueError(f"{key}: expected {hint.__name__}, got {value!r}")
    return value


@dataclass
class FrameEncoderConfig:
    """The frozen per-frame image encoder.

    kind "clip": ``name`` is a hub id or folder of a CLIP vision model (image embeddings).
    kind "resnet50": ``name`` is "IMAGENET1K_V2" (torchvision's weights) or "bundled"
    (weights stored in the model folder's safetensors under ``frame_encoder.``).

    preprocessing: how the model's frames were resized when it was trained, so that it is fed the
    same way: "tensor", on uint8 tensors (ours); "pil", each frame a PIL image through torchvision's
    preset, as the thesis did (resnet50 only; see frames.py for how far apart the two are).
    """

    kind: typing.Literal["clip", "resnet50"] = "clip"
    name: str = "openai/clip-vit-base-patch32"
    revision: str | None = None
    preprocessing: typing.Literal["tensor", "pil"] = "tensor"

    def validate(self) -> None:
        if self.preprocessing == "pil" and self.kind != "resnet50":
            raise ValueError(f"frame_encoder.preprocessing: 'pil' is the thesis's ResNet-50 recipe; "
                             f"kind {self.kind!r} takes 'tensor'")


@dataclass
class TemporalConfig:
    """The trainable temporal transformer (see ``temporal.py``)."""

    feature_dim: int = 512            # per-frame feature width (the frame encoder's output)
    d_model: int = 768                # transformer width; an input projection maps features to it
    num_layers: int = 4
    num_heads: int = 8
    ff_dim: int = 3072
    dropout: float = 0.1
    activation: typing.Literal["gelu", "relu"] = "gelu"
    norm_first: bool = True           # pre-norm (stable to train); the thesis used post-norm
    num_tokens: int = 0               # 0: one output token per frame; N > 0: N learned query tokens
    max_positions: int = 512          # frames the sinusoidal position table covers
    output_space: typing.Literal["t5", "decoder"] = "t5"
    output_dim: int = 768             # T5 width for "t5", MusicGen decoder width for "decoder"

    def validate(self) -> None:
        for key in ("feature_dim", "d_model", "num_layers", "num_heads", "ff_dim", "max_positions", "output_dim"):
            if getattr(self, key) <= 0:
                raise ValueError(f"temporal.{key}: must be positive, got {getattr(self, key)}")
        if self.d_model % self.num_heads:
            raise ValueError(f"temporal.num_heads: {self.num_heads} does not divide d_model {self.d_model}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"temporal.dropout: must be in [0, 1), got {self.dropout}")
        if self.num_tokens < 0:
            raise ValueError(f"temporal.num_tokens: must be >= 0, got {self.num_tokens}")


@dataclass
class VideoModelConfig:
    """A model folder's ``config.json``: which frozen models to use and the temporal transformer.

    ``musicgen`` and ``frame_encoder.name`` are hub ids or paths; relative paths are relative
    to the model folder.
    """

    musicgen: str = "facebook/musicgen-small"
    musicgen_revision: str | None = None
    frame_encoder: FrameEncoderConfig = field(default_factory=FrameEncoderConfig)
    fps: float = 1.0                  # frames sampled per second of video
    # 0: one frame every 1/fps s of the clip, however many. N > 0: the temporal transformer always
    # gets exactly N positions, the regime it was trained in (the thesis: 30 at 1 fps); see frame_window.py.
    num_frames: int = 0
    # With num_frames: how a clip shorter than num_frames / fps fills the N positions.
    # "hold_last": its last frame repeats (a picture that stands still); "mask": padding, masked out.
    short_clips: typing.Literal["hold_last", "mask"] = "hold_last"
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    # Time-local conditioning (time_band.py): B > 0 s lets the decoder position for audio time t attend
    # only to the frames within B s of t (and the nearest one); text tokens stay global. 0: MusicGen's
    # global cross-attention, every position sees every token (the thesis's models, and the default).
    attention_band: float = 0.0
    # A motion channel (motion.py): per frame, the frame-difference energy of the video decoded at its
    # own frame rate over the frame's interval, appended to the frame features the temporal transformer gets.
    motion: bool = False
    # A PEFT LoRA adapter folder applied to MusicGen's decoder (the thesis's PEFT models), relative
    # to the model folder; None: MusicGen as published.
    musicgen_adapter: str | None = None
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def validate(self) -> None:
        if self.format != FORMAT_NAME:
            raise ValueError(f"format: expected {FORMAT_NAME!r}, got {self.format!r}")
        if self.format_version > FORMAT_VERSION:
            raise ValueError(f"format_version: {self.format_version} is newer than this code ({FORMAT_VERSION}); upgrade video-to-music")
        if not self.fps > 0:
            raise ValueError(f"fps: must be positive, got {self.fps}")
        if self.num_frames < 0:
            raise ValueError(f"num_frames: must be >= 0, got {self.num_frames}")
        if self.num_frames > self.temporal.max_positions:
            raise ValueError(f"num_frames: {self.num_frames} exceeds temporal.max_positions {self.temporal.max_positions}")
        if not self.attention_band >= 0:
            raise ValueError(f"attention_band: must be >= 0 seconds, got {self.attention_band}")
        if self.attention_band > 0 and (self.num_frames or self.temporal.num_tokens):
            raise ValueError("attention_band: time-local conditioning needs one token per frame at its own time "
                             "(num_frames 0 and temporal.num_tokens 0)")
        self.frame_encoder.validate()
        self.temporal.validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# MusicGen decoder precisions: name -> torch dtype (the names generate.py, the app and from_pretrained take)
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16"}

DEFAULT_WINDOW = 30.0  # s: MusicGen's training window
DEFAULT_OVERLAP = 10.0  # s of music each window continues (its audio-code prompt)
DEFAULT_MIN_SCENE = 4.0  # s: with cuts, a window runs at least this long before a cut ends it
MAX_CANDIDATES = 8  # rerank: rows of one batch; with guidance, up to 4 stay within the few-row kernel (gemv.MAX_ROWS)
MAX_NUDGE = 10.0  # percent of time-stretch between cuts: more is a tempo change, not a nudge


def check_window_options(window: float, overlap: float, max_seconds: float | None = None) -> None:
    """ValueError naming the option for an impossible window/overlap (``max_seconds``: the longest
    window the MusicGen can generate at once)."""
    if not window > 0:
        raise ValueError(f"window: must be > 0 seconds, got {window:g}")
    if max_seconds is not None and window > max_seconds:
        raise ValueError(f"window: {window:g} s is longer than this MusicGen can generate at once ({max_seconds:.1f} s)")
    if not 0 < overlap < window:
        raise ValueError(f"overlap: must be > 0 and less than the window ({window:g} s), got {overlap:g}")


@dataclass
class GenerationParams:
    """Sampling options for one generation; ``validate`` rejects impossible values.

    guidance_scale: classifier-free guidance ``uncond + s * (cond - uncond)``; 1 disables the
        unconditional branch, 0 ignores the video.
    temperature: softmax temperature (> 0).
    top_k: sample among the k most likely codes (0: no limit).
    top_p: nucleus sampling threshold in (0, 1] (0: off).
    duration: seconds of music (default: the video's duration).
    seed: makes a run reproducible bit for bit on the same machine (None: random).
    prompt: optional text whose T5 embeddings join the video tokens.
    window: seconds of music per MusicGen window; longer music is made window by window, each
        conditioned on its own part of the video (see windows.py).
    overlap: seconds of music each window after the first continues (its audio-code prompt).
    follow_cuts: scene-aware windows: a new window (and its conditioning) starts at a shot cut.
    cuts: the cut times in seconds (None: detected in the video with PySceneDetect when needed).
    cut_min_seconds: with follow_cuts, a window runs at least this long before a cut ends it.
    candidates: K > 1 samples K candidates (rows of one batch) for each window holding a cut and
        keeps the one whose beats best hit the cuts (at most MAX_CANDIDATES).
    nudge: percent (0: off, at most MAX_NUDGE): time-stretch the music between cuts by at most this
        much so the beat nearest each cut lands on it, the total length kept.
    """

    guidance_scale: float = 3.0
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    duration: float | None = None
    seed: int | None = None
    prompt: str | None = None
    window: float = DEFAULT_WINDOW
    overlap: float = DEFAULT_OVERLAP
    follow_cuts: bool = False
    cuts: list[float] | None = None
    cut_min_seconds: float = DEFAULT_MIN_SCENE
    candidates: int = 1
    nudge: float = 0.0

    @property
    def needs_cuts(self) -> bool:
        return self.follow_cuts or self.candidates > 1 or self.nudge > 0

    def validate(self) -> None:
        if not self.guidance_scale >= 0:
            raise ValueError(f"guidance_scale: must be >= 0, got {self.guidance_scale}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k: must be >= 0, got {self.top_k}")
        if not 0.0 <= self.top_p <= 1.0:
            raise ValueError(f"top_p: must be in [0, 1], got {self.top_p}")
        if self.duration is not None and not self.duration > 0:
            raise ValueError(f"duration: must be > 0 seconds, got {self.duration}")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ValueError(f"seed: must be in [0, 2**63), got {self.seed}")
        check_window_options(self.window, self.overlap)
        if not 1 <= self.candidates <= MAX_CANDIDATES:
            raise ValueError(f"candidates: must be in [1, {MAX_CANDIDATES}] (rows of one batch), got {self.candidates}")
        if not 0 <= self.nudge <= MAX_NUDGE:
            raise ValueError(f"nudge: must be in [0, {MAX_NUDGE:g}] percent, got {self.nudge:g}")
        if self.cuts is not None and any(not c >= 0 for c in self.cuts):
            raise ValueError("cuts: times must be >= 0 seconds")


# Command-line help for GenerationParams' fields (the defaults come from the dataclass): every tool
# that samples (generate.py, evaluate.py) builds its options from this through cli.add_generation_arguments.
GENERATION_OPTION_HELP = {
    "guidance_scale": "classifier-free guidance (1: off, 0: ignore the video)",
    "temperature": "sampling temperature",
    "top_k": "sample among the k likeliest codes (0: no limit)",
    "top_p": "nucleus sampling threshold (0: off)",
    "duration": "seconds of music (default: the video's length)",
    "seed": "random seed (default: random; the seed used is printed)",
    "prompt": 'optional text prompt joined with the video, e.g. "calm piano"',
    "window": "seconds of music per MusicGen window; longer music is made window by window",
    "overlap": "seconds of music each later window continues from the one before",
    "cut_min_seconds": "with --follow-cuts: seconds a window runs at least before a cut starts the next",
    "candidates": f"sample K candidates (rows of one batch, at most {MAX_CANDIDATES}) for each window holding a cut "
                  "and keep the one whose beats best hit it",
    "nudge": f"time-stretch the music between cuts by at most PCT percent (0: off; PCT at most {MAX_NUDGE:g}) so "
             "the nearest beat lands on each cut",
}
SAMPLING_OPTIONS = ("guidance_scale", "temperature", "top_k", "top_p")  # how each code is drawn


# How generated music is finished (loudness.py does it); here so that commands read the defaults lightly.
DEFAULT_LOUDNESS = -16.0  # LUFS: what streaming platforms and podcasts aim at
DEFAULT_FADE = 0.5  # s
DEFAULT_DUCK = 6.0  # dB


@dataclass(frozen=True)
class Mix:
    """How the music is finished and mixed.

    loudness: target integrated loudness of the output in LUFS (None: leave the level as generated).
    fade: seconds of fade-in and fade-out on the music.
    keep_original: None replaces the video's sound with the music. A number (dB) keeps the
        video's own soundtrack, as recorded, and sets the music's loudness to the original's
        plus this many dB: -12 puts the music 12 LU under the original (speech stays clear),
        +6 puts it over. The mix is then brought to ``loudness`` as a whole (balance kept).
    duck: with keep_original, the music is lowered by this many dB more while the original is
        loud (its momentary loudness above the original's integrated loudness - 10 LU, i.e. while
        someone speaks), with 50 ms attack and 500 ms release. 0 turns ducking off.
    """

    loudness: float | None = DEFAULT_LOUDNESS
    fade: float = DEFAULT_FADE
    keep_original: float | None = None
    duck: float = DEFAULT_DUCK

    def validate(self) -> None:
        if self.loudness is not None and not -70 < self.loudness <= 0:
            raise ValueError(f"loudness: must be in (-70, 0] LUFS, got {self.loudness:g}")
        if not self.fade >= 0:
            raise ValueError(f"fade: must be >= 0 seconds, got {self.fade:g}")
        if self.keep_original is not None and not -60 <= self.keep_original <= 60:
            raise ValueError(f"keep_original_audio: must be in [-60, 60] dB, got {self.keep_original:g}")
        if not 0 <= self.duck <= 60:
            raise ValueError(f"duck: must be in [0, 60] dB, got {self.duck:g}")
