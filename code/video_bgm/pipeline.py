"""Video in, music out: frames -> frozen frame encoder -> temporal transformer -> frozen MusicGen.

``VideoBGM.from_pretrained(model_dir)`` rebuilds everything from a model folder
(``config.json`` + ``model.safetensors``); ``generate(video)`` returns the waveform.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from . import media
from .config import GenerationParams, VideoModelConfig, from_dict
from .errors import ModelError, UserInputError
from .frames import FrameEncoder, build_frame_encoder
from .musicgen import MusicGen
from .refs import first_line, resolve_reference
from .temporal import TemporalTransformer

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MAX_SECONDS = 30.0  # MusicGen's training window; longer videos need windowed generation

# (stage, done, total): stages are "frames", "encoding", "generating", "decoding".
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
    """One generated piece: ``audio`` is float32 [C, S] at ``sample_rate``."""

    audio: np.ndarray
    sample_rate: int
    seed: int
    duration: float


class VideoBGM:
    """Frozen frame encoder + trainable temporal transformer + frozen MusicGen."""

    def __init__(self, config: VideoModelConfig, frame_encoder: FrameEncoder,
                 temporal: TemporalTransformer, musicgen: MusicGen):
        self.config = config
        self.frame_encoder = frame_encoder
        self.temporal = temporal
        self.musicgen = musicgen
        check_dimensions(config, frame_encoder, musicgen)

    # --- loading and saving ------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, ref: str | os.PathLike, device: str | torch.device = "auto",
                        musicgen: str | None = None) -> "VideoBGM":
        """Load a model folder; ``musicgen`` overrides the MusicGen its config names."""
        device = resolve_device(device) if isinstance(device, str) else device
        folder = locate_model(ref)
        config = read_config(folder)
        # Paths relative to the folder become absolute, so the model can be saved elsewhere.
        config.musicgen = resolve_reference(musicgen, None, "--musicgen") if musicgen else \
            resolve_reference(config.musicgen, folder, f"musicgen in {folder / CONFIG_NAME}")
        if musicgen:
            config.musicgen_revision = None
        if config.frame_encoder.kind == "clip":
            config.frame_encoder.name = resolve_reference(config.frame_encoder.name, folder,
                                                          f"frame_encoder.name in {folder / CONFIG_NAME}")
        state = read_weights(folder)
        frame_state = {k[len("frame_encoder."):]: v for k, v in state.items() if k.startswith("frame_encoder.")}
        temporal_state = {k[len("temporal."):]: v for k, v in state.items() if k.startswith("temporal.")}

        frame_encoder = build_frame_encoder(config.frame_encoder, folder, frame_state).to(device)
        mg = MusicGen.from_pretrained(config.musicgen, config.musicgen_revision, device)
        check_dimensions(config, frame_encoder, mg, where=folder)
        temporal = TemporalTransformer(config.temporal)
        try:
            temporal.load_state_dict(temporal_state)
        except RuntimeError as err:
            raise ModelError(folder, f"{WEIGHTS_NAME} does not match {CONFIG_NAME}: {_summarise_load_error(err)}") from None
        return cls(config, frame_encoder, temporal.to(device).eval(), mg)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (the temporal transformer, plus the frame
        encoder's weights when they are bundled); each file appears whole or not at all."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {f"temporal.{k}": v.detach().cpu().contiguous() for k, v in self.temporal.state_dict().items()}
        if self.config.frame_encoder.name == "bundled":
            state.update({f"frame_encoder.{k}": v.detach().cpu().contiguous()
                          for k, v in self.frame_encoder.model.state_dict().items()})
        _atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
        _atomic_write(folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(_config_json(self.config)))
        return folder

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
                f"{video}: {duration:.1f} s of music requested; this version generates at most "
                f"{MAX_SECONDS:.0f} s per clip (pass --duration {MAX_SECONDS:.0f} or less)")
        seed = params.seed if params.seed is not None else secrets.randbelow(2**31)

        report("frames", 0, 1)
        frames, _ = media.sample_frames(video, self.config.fps, info=info, duration=min(duration, info.duration))
        report("frames", 1, 1)
        report("encoding", 0, 1)
        features = self.frame_encoder.encode(frames)[None]  # (1, T, F)
        condition, mask = self.condition(features, torch.ones(features.shape[:2], dtype=torch.bool, device=self.device),
                                         params.prompt)
        report("encoding", 1, 1)

        num_frames = math.ceil(duration * self.musicgen.frame_rate)
        generator = torch.Generator(self.device).manual_seed(seed)
        codes = self.musicgen.generate_codes(
            condition, mask, num_frames, guidance_scale=params.guidance_scale, temperature=params.temperature,
            top_k=params.top_k, top_p=params.top_p, generator=generator,
            progress=lambda done, total: report("generating", done, total))
        report("decoding", 0, 1)
        audio = self.musicgen.decode(codes)[0].float().cpu().numpy()  # (C, S)
        report("decoding", 1, 1)
        audio = audio[:, : round(duration * self.sample_rate)]
        return Generation(limit_peak(audio), self.sample_rate, seed, duration)


def limit_peak(audio: np.ndarray, peak: float = 0.99) -> np.ndarray:
    """Scale down (never clip) audio whose peak exceeds ``peak``, so the WAV never distorts."""
    loudest = float(np.abs(audio).max(initial=0.0))
    return audio * (peak / loudest) if loudest > peak else audio


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


def locate_model(ref: str | os.PathLike) -> Path:
    """A model folder on disk, or a hub repo id downloaded into the Hugging Face cache."""
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file():
            raise ModelError(path, f"not a model folder (no {CONFIG_NAME})")
        return path.resolve()
    if path.exists() or str(ref).startswith((".", "/", "~")) or str(ref).count("/") != 1:
        raise ModelError(ref, "no such model folder")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(ref)))
    except Exception as err:  # network, auth, missing repo: all one line for the user
        raise ModelError(ref, f"cannot download from the Hugging Face Hub ({first_line(err)})") from None


def read_config(folder: Path) -> VideoModelConfig:
    try:
        config = from_dict(VideoModelConfig, json.loads((folder / CONFIG_NAME).read_text()))
        config.validate()
    except json.JSONDecodeError as err:
        raise ModelError(folder, f"{CONFIG_NAME} is not valid JSON ({err})") from None
    except ValueError as err:
        raise ModelError(folder, f"{CONFIG_NAME}: {err}") from None
    return config


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    path = folder / WEIGHTS_NAME
    if not path.is_file():
        raise ModelError(folder, f"missing {WEIGHTS_NAME}")
    try:
        return load_file(path)
    except Exception as err:  # safetensors raises its own error types for truncated files
        raise ModelError(folder, f"{WEIGHTS_NAME} cannot be read ({first_line(err)})") from None


def _summarise_load_error(err: RuntimeError) -> str:
    lines = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
    return "; ".join(lines)[:300] or first_line(err)


def _config_json(config: VideoModelConfig) -> str:
    return json.dumps(config.to_dict(), indent=2) + "\n"


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write through ``write(tmp_path)`` then rename, so ``path`` is never half-written."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
