"""Video in, music out: frames -> frozen frame encoder -> temporal transformer -> frozen MusicGen.

``VideoBGM.from_pretrained(model_dir)`` rebuilds everything from a model folder
(``config.json`` + ``model.safetensors``); ``generate(video)`` returns the waveform.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import cutsync, hub, media, model_card, shots, thesis, windows
from .config import PRECISIONS, GenerationParams, VideoModelConfig, check_window_options
from .errors import ModelError, UserInputError
from .frames import FrameEncoder, build_frame_encoder
from .lora import LoraAdapter
from .loudness import limit_peak
from .model_folder import CONFIG_NAME, WEIGHTS_NAME, ModelParts, folder_kind, read_config, read_parts, read_weights, write_parts
from .musicgen import MusicGen
from .refs import first_line, resolve_reference
from .temporal import TemporalTransformer
from .time_band import TimeBand

__all__ = ["VideoBGM", "Generation", "check_dimensions", "locate_model", "read_config", "read_weights",
           "resolve_device", "CONFIG_NAME", "WEIGHTS_NAME"]
MAX_SECONDS = 3 * 3600.0  # a sanity bound (a typo'd --duration); any length up to it is made window by window

# (stage, done, total): stages are "frames", "encoding", "window" (k of n starts), "generating"
# (steps of the whole piece), "decoding"; frames and encoding are reported for the first window.
Progress = Callable[[str, int, int], None]


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" picks CUDA when present; asking for CUDA without one is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserInputError(f"--device: unknown device {device!r} (use auto, cpu or cuda)")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserInputError(f"--device {device}: no CUDA device is available on this machine")
    return torch.device(device)


@dataclass
class Generation:
    """One generated piece: ``audio`` is float32 [C, S] at ``sample_rate``.

    ``save`` and ``mux`` write it the way generate.py does (whole or not at all, never over the
    input, one ``OutputError`` line for any OS failure); the audio is written as generated, without
    generate.py's loudness normalisation and fades (``video_bgm.loudness.finish`` does those).
    """

    audio: np.ndarray
    sample_rate: int
    seed: int
    duration: float
    cuts: list[float] | None = None  # the cuts the music followed (s), where it did
    reranks: list = None  # cutsync.Rerank per reranked window
    nudged: "cutsync.Nudge | None" = None

    def notes(self) -> list[str]:
        """One line per thing done for the cuts (reranks, the nudge), for the command line."""
        lines = [r.describe() for r in self.reranks or ()]
        return lines + ([self.nudged.describe()] if self.nudged is not None else [])

    def save(self, path: str | os.PathLike) -> Path:
        """The music as a 16-bit WAV at ``path``; returns the path."""
        media.write_wav(path, self.audio, self.sample_rate)
        return Path(path)

    def mux(self, video: str | os.PathLike, path: str | os.PathLike) -> Path:
        """``video``'s video stream (copied, not re-encoded) with the music as its only sound, at
        ``path`` (.mp4, .mov, .mkv or .webm), trimmed or padded with silence to the video's length."""
        media.mux_audio(video, self.audio, self.sample_rate, path)
        return Path(path)


class VideoBGM:
    """Frozen frame encoder + trainable temporal transformer + frozen MusicGen.

    ``adapter``: a LoRA adapter already merged into ``musicgen``'s decoder (kept to be saved again);
    ``info``: provenance for the model card (``source``, ``training``, ``metrics``).
    """

    def __init__(self, config: VideoModelConfig, frame_encoder: FrameEncoder,
                 temporal: TemporalTransformer, musicgen: MusicGen,
                 adapter: LoraAdapter | None = None, info: dict | None = None):
        self.config = config
        self.frame_encoder = frame_encoder
        self.temporal = temporal
        self.musicgen = musicgen
        self.adapter = adapter
        self.info = dict(info or {})
        check_dimensions(config, frame_encoder, musicgen)

    # --- loading and saving ------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, ref: str | os.PathLike, device: str | torch.device = "auto",
                        musicgen: str | None = None, *, subfolder: str | None = None,
                        revision: str | None = None, precision: str | None = None,
                        dtype: str | torch.dtype | None = None, token: str | bool | None = None,
                        local_files_only: bool = False) -> "VideoBGM":
        """Load a model: a folder (ours, or a thesis folder with configuration.yml + lm_final.pt), a hub
        repo id (with ``subfolder`` and ``revision``), or a checkpoint name such as ``nature_small``.

        ``musicgen`` (a hub id or folder) overrides the MusicGen the model names. ``precision``:
        "fp32" (default) or "bf16" for MusicGen's decoder (``MusicGen.from_pretrained``); ``dtype``
        says the same under Hugging Face's name (``torch.bfloat16`` or ``"bfloat16"``). ``token`` and
        ``local_files_only`` mean what they mean to ``transformers``' ``from_pretrained``, for every
        download this load makes (the model, its MusicGen, its CLIP).
        """
        precision = _precision(precision, dtype)
        with hub.access(token=token, local_files_only=local_files_only):
            return cls._load(ref, device, musicgen, subfolder, revision, precision)

    @classmethod
    def _load(cls, ref, device, musicgen, subfolder, revision, precision: str) -> "VideoBGM":
        device = resolve_device(device) if isinstance(device, str) else device
        folder = locate_model(ref, subfolder=subfolder, revision=revision)
        override = resolve_reference(musicgen, None, "--musicgen") if musicgen else None
        if folder_kind(folder) == "thesis":
            parts = thesis.read_checkpoint(folder, musicgen=override)
            files = (thesis.WEIGHTS_FILE, thesis.CONFIG_FILE)
        else:
            parts = read_parts(folder)
            files = (WEIGHTS_NAME, CONFIG_NAME)
        config = parts.config
        # Paths relative to the folder become absolute, so the model can be saved elsewhere.
        if override:
            config.musicgen, config.musicgen_revision = override, None
        else:
            config.musicgen = resolve_reference(config.musicgen, folder, f"musicgen in {folder / CONFIG_NAME}")
        if config.frame_encoder.kind == "clip":
            config.frame_encoder.name = resolve_reference(config.frame_encoder.name, folder,
                                                          f"frame_encoder.name in {folder / CONFIG_NAME}")
            _require_cached(config.frame_encoder.name, config.frame_encoder.revision, "the CLIP frame encoder")

        frame_encoder = build_frame_encoder(config.frame_encoder, folder, parts.frame_state).to(device)
        _require_cached(config.musicgen, config.musicgen_revision, "MusicGen")
        mg = MusicGen.from_pretrained(config.musicgen, config.musicgen_revision, device, precision=precision)
        check_dimensions(config, frame_encoder, mg, where=folder)
        if parts.adapter is not None:
            try:
                parts.adapter.apply(mg)
            except RuntimeError as err:  # peft's shape errors
                raise ModelError(parts.adapter.source, f"cannot apply the adapter to {mg.name} ({first_line(err)})") from None
        temporal = TemporalTransformer.for_model(config)
        try:
            temporal.load_state_dict(parts.temporal_state)
        except RuntimeError as err:
            raise ModelError(folder, f"{files[0]} does not match {files[1]}: {_summarise_load_error(err)}") from None
        return cls(config, frame_encoder, temporal.to(device).eval(), mg, adapter=parts.adapter, info=parts.info)

    def parts(self) -> ModelParts:
        """The model as saved: config, weights, adapter, provenance."""
        frame_state = self.frame_encoder.model.state_dict() if self.config.frame_encoder.name == "bundled" else {}
        return ModelParts(self.config, self.temporal.state_dict(), frame_state, self.adapter, self.info)

    def save_pretrained(self, folder: str | os.PathLike, model_card: bool = False) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (the temporal transformer, plus the frame
        encoder's weights when they are bundled), ``musicgen_adapter/`` when the model has one, and
        with ``model_card`` a README.md; each file appears whole or not at all."""
        card = render_card(self) if model_card else None
        return write_parts(folder, self.parts(), card)

    def push_to_hub(self, repo_id: str, *, subfolder: str | None = None, revision: str | None = None,
                    private: bool | None = None, token: str | None = None,
                    commit_message: str = "Upload video-to-music model") -> str:
        """Upload the model with a generated model card to ``repo_id`` (created if missing).

        The frozen models must be named by hub id: a local path in config.json would not resolve
        for anyone downloading the model. Returns the commit's URL.
        """
        local = [f"{what} {ref}" for what, ref in (("musicgen", self.config.musicgen),
                 ("frame_encoder.name", self.config.frame_encoder.name if self.config.frame_encoder.kind == "clip" else None))
                 if ref and Path(ref).expanduser().exists()]
        if local:
            raise ModelError(repo_id, f"config.json names a local path ({local[0]}), which nobody downloading the model "
                                      "has; set it to a hub id before pushing")
        with tempfile.TemporaryDirectory(prefix="video-bgm-push-") as tmp:
            self.save_pretrained(tmp, model_card=True)
            return hub.push_folder(Path(tmp), repo_id, subfolder=subfolder, revision=revision, private=private,
                                   token=token, commit_message=commit_message)

    def eval(self) -> "VideoBGM":
        """Every part in inference mode (the temporal transformer's dropout off), as after loading; returns self."""
        return self.train(False)

    def train(self, mode: bool = True) -> "VideoBGM":
        """The temporal transformer in training mode (dropout on); the frozen parts always stay in
        inference mode. Returns self."""
        self.temporal.train(mode)
        self.frame_encoder.eval()
        self.musicgen.model.eval()
        return self

    # --- properties --------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.musicgen.device

    @property
    def sample_rate(self) -> int:
        return self.musicgen.sample_rate

    @property
    def audio_channels(self) -> int:
        return self.musicgen.audio_channels

    # --- stages ------------------------------------------------------------------------------
    def condition(self, features: torch.Tensor, mask: torch.Tensor,
                  prompt: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame features [B, T, F] + mask [B, T] -> decoder-space conditioning [B, N, D] + mask.

        Video tokens come first; a prompt's projected T5 embeddings follow them.
        """
        tokens, token_mask = self.temporal(features, mask)
        if self.config.temporal.output_space == "t5":
            tokens = self.musicgen.project_text(tokens)
        if prompt:
            text, text_mask = self.musicgen.encode_text([prompt] * tokens.shape[0])
            tokens = torch.cat([tokens, self.musicgen.project_text(text)], dim=1)
            token_mask = torch.cat([token_mask, text_mask], dim=1)
        return tokens, token_mask

    def time_band(self, frame_starts, num_tokens: int) -> TimeBand | None:
        """The time-local band (``config.attention_band``) of conditioning with ``num_tokens`` tokens
        whose first are the frames starting at ``frame_starts`` (s from decoder position 0's time);
        None for a model with global conditioning."""
        if not self.config.attention_band:
            return None
        return TimeBand.for_frames(frame_starts, num_tokens, 1.0 / self.config.fps, self.config.attention_band)

    def segment_band(self, num_frames: int, num_tokens: int) -> TimeBand | None:
        """``time_band`` of a training segment: its frames at i / fps from the music's start."""
        return self.time_band(np.arange(num_frames) / self.config.fps, num_tokens)

    @torch.no_grad()
    def generate(self, video: str | os.PathLike, params: GenerationParams | None = None,
                 progress: Progress | None = None, info: media.VideoInfo | None = None) -> Generation:
        """Music for ``video``: float32 [C, S], ``params.duration`` seconds (default: the video's)."""
        params = params or GenerationParams()
        params.validate()
        report = progress or (lambda stage, done, total: None)
        info = info or media.probe_video(video)
        duration = params.duration or info.duration
        if duration > MAX_SECONDS:
            raise UserInputError(
                f"{video}: {duration:.1f} s of music requested; at most {MAX_SECONDS / 3600:g} h per clip")
        seed = params.seed if params.seed is not None else secrets.randbelow(2**31)
        try:
            check_window_options(params.window, params.overlap, self.musicgen.max_frames / self.musicgen.frame_rate)
            if params.follow_cuts:
                windows.check_min_scene(params.cut_min_seconds)
        except ValueError as err:
            raise UserInputError(f"--{err}") from None

        cuts = None
        if params.needs_cuts:
            found = params.cuts if params.cuts is not None else shots.detect_cuts(video)
            cuts = sorted(c for c in found if 0 < c < duration)
        condition_for = windows.video_condition(self, video, info, params.prompt, progress=report)
        samples = round(duration * self.sample_rate)
        generator = torch.Generator(self.device).manual_seed(seed)
        reranks = []
        chunks = windows.generate(
            self.musicgen, condition_for, windows.frames_for(duration, self.musicgen.frame_rate),
            window=params.window, overlap=params.overlap, generator=generator, progress=report,
            cuts=cuts if params.follow_cuts else None, min_scene=params.cut_min_seconds,
            rerank_cuts=cuts, candidates=params.candidates, on_rerank=reranks.append,
            guidance_scale=params.guidance_scale, temperature=params.temperature, top_k=params.top_k,
            top_p=params.top_p)
        audio = windows.render(chunks, self.audio_channels, samples)  # (C, S)
        nudged = None
        if params.nudge > 0 and cuts:
            audio, nudged = cutsync.nudge(audio, self.sample_rate, cuts, params.nudge / 100)
        return Generation(limit_peak(audio), self.sample_rate, seed, duration, cuts, reranks, nudged)


def check_dimensions(config: VideoModelConfig, frame_encoder: FrameEncoder, musicgen: MusicGen,
                     where: str | os.PathLike = "model") -> None:
    """The temporal transformer must fit both frozen models it sits between."""
    t = config.temporal
    if frame_encoder.feature_dim != t.feature_dim:
        raise ModelError(where, f"{CONFIG_NAME}: temporal.feature_dim is {t.feature_dim} but the frame encoder "
                                f"({config.frame_encoder.name}) gives {frame_encoder.feature_dim}-d features")
    expected = musicgen.text_dim if t.output_space == "t5" else musicgen.decoder_dim
    if t.output_dim != expected:
        what = "text encoder width" if t.output_space == "t5" else "decoder width"
        raise ModelError(where, f"{CONFIG_NAME}: temporal.output_dim is {t.output_dim} in {t.output_space!r} space "
                                f"but {musicgen.name}'s {what} is {expected}")


def _precision(precision: str | None, dtype) -> str:
    """``precision`` ("fp32"/"bf16"), or the one ``dtype`` (a torch dtype or its name) stands for."""
    if dtype is None:
        return precision or "fp32"
    name = str(dtype).removeprefix("torch.")
    by_dtype = {torch_name: ours for ours, torch_name in PRECISIONS.items()}
    if name not in by_dtype:
        raise ValueError(f"dtype must be one of {', '.join(PRECISIONS.values())}, got {dtype!r}")
    if precision is not None and precision != by_dtype[name]:
        raise ValueError(f"precision={precision!r} and dtype={dtype!r} disagree; pass one of them")
    return by_dtype[name]


def locate_model(ref: str | os.PathLike, subfolder: str | None = None, revision: str | None = None) -> Path:
    """A model folder on disk, or a hub model (repo id, subfolder, revision) in the Hugging Face cache."""
    folder = hub.locate(ref, subfolder=subfolder, revision=revision)
    if folder_kind(folder) is None:
        if (folder / CONFIG_NAME).is_file():
            read_config(folder)  # says what is wrong with it
            raise ModelError(folder, f"{CONFIG_NAME} is not a video-to-music model's config")
        raise ModelError(folder, f"not a model folder (no {CONFIG_NAME}), nor a thesis checkpoint "
                                 f"({thesis.CONFIG_FILE} and {thesis.WEIGHTS_FILE})")
    return folder


def render_card(model: VideoBGM) -> str:
    name = Path(str(model.info.get("source") or "video-to-music model")).name
    return model_card.render(model.config, model.info, model.adapter, name=name)


def _require_cached(ref: str, revision: str | None, what: str) -> None:
    """Offline, a frozen model missing from the cache is one line naming the command that fetches it."""
    if Path(ref).expanduser().exists() or not hub.looks_like_repo_id(ref) or not hub.settle_offline_mode():
        return
    if not hub.is_cached(ref, revision):
        raise ModelError(ref, f"{what} is not in the Hugging Face cache, and {hub.offline_reason()}; "
                              f"fetch it once with internet: {hub.FETCH_SCRIPT} {ref}")


def _summarise_load_error(err: RuntimeError) -> str:
    lines = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
    return "; ".join(lines)[:300] or first_line(err)
