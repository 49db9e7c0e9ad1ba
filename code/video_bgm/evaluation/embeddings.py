"""Audio embeddings for FAD and diversity: CLAP audio windows and EnCodec latent frames, cached.

- ``ClapEmbedder``: transformers' ``ClapModel`` (``laion/clap-htsat-unfused`` by default; also
  ``laion/larger_clap_music``), mono audio at CLAP's own 48 kHz, cut into windows of the feature
  extractor's length (10 s for the published models; a last window shorter than a second is
  dropped unless it is the only one), each window one L2-normalised embedding. Windows never
  exceed that length, so the feature extractor's random crops never happen: embeddings are
  deterministic. ``embed_text`` gives CLAP text embeddings for the text-audio score.
- ``EncodecEmbedder``: the continuous latents of the MusicGen's own EnCodec encoder (before
  quantisation), one vector per code frame (50 per second), mono.

``EmbeddingCache`` keeps each file's embeddings [n, D] under
``<cache>/embeddings/<settings key>/<sha256 of the file>.safetensors``: the key holds the
embedding model and the span of audio embedded, so a re-run embeds only new or changed files.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from .. import media
from ..errors import ModelError
from ..musicgen import MusicGen
from ..refs import first_line, load_pretrained
from ..data.cache import file_digest, save_atomic, settings_key
from . import DEFAULT_CLAP



class ClapEmbedder:
    """CLAP audio (and text) embeddings, 48 kHz mono, one per window of the feature extractor's length."""

    name = "clap"

    def __init__(self, ref: str = DEFAULT_CLAP, device: str | torch.device = "cpu", revision: str | None = None,
                 batch_size: int = 16):
        from transformers import AutoFeatureExtractor, ClapModel

        self.ref, self.revision, self.batch_size = ref, revision, batch_size
        self.model = load_pretrained(ClapModel, ref, "CLAP", revision).to(device).eval()
        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(ref, revision=revision)
        except (OSError, ValueError) as err:
            raise ModelError(ref, f"cannot load CLAP's feature extractor ({first_line(err)})") from None
        self.sample_rate = int(self.extractor.sampling_rate)
        self.window = int(self.extractor.nb_max_samples)
        self.fusion = bool(self.model.config.audio_config.enable_fusion)
        self._tokenizer = None

    @property
    def device(self) -> torch.device:
        return self.model.device

    def settings(self) -> dict:
        return {"kind": "clap", "model": self.ref, "revision": self.revision, "window": self.window}

    def windows(self, audio: np.ndarray) -> list[np.ndarray]:
        """Mono audio [S] -> windows of at most ``window`` samples (see the module docstring)."""
        pieces = [audio[i:i + self.window] for i in range(0, max(len(audio), 1), self.window)]
        keep = [p for p in pieces if len(p) >= self.sample_rate]
        return keep or pieces[:1]

    @torch.no_grad()
    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Mono audio [S] at ``sample_rate`` -> embeddings [windows, D] (unit length)."""
        windows = self.windows(np.asarray(audio, dtype=np.float32))
        if len(windows[0]) == 0:
            raise ValueError("no audio to embed")
        out = []
        for i in range(0, len(windows), self.batch_size):
            # fusion models stack 4 views of a mel; "rand_trunc" never crops a window this short
            inputs = self.extractor(windows[i:i + self.batch_size], sampling_rate=self.sample_rate,
                                    truncation="fusion" if self.fusion else "rand_trunc", padding="repeatpad",
                                    return_tensors="pt")
            # The extractor marks one random short window "longer" for fusion models: none is.
            is_longer = torch.zeros_like(inputs["is_longer"], dtype=torch.bool)
            features = self.model.get_audio_features(input_features=inputs["input_features"].float().to(self.device),
                                                     is_longer=is_longer.to(self.device)).pooler_output
            out.append(features.float().cpu().numpy())
        return np.concatenate(out)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Texts -> CLAP text embeddings [B, D] (unit length)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.ref, revision=self.revision)
            except (OSError, ValueError) as err:
                raise ModelError(self.ref, f"cannot load CLAP's tokenizer ({first_line(err)})") from None
        batch = self._tokenizer(texts, padding=True, truncation=True, return_tensors="pt").to(self.device)
        features = self.model.get_text_features(input_ids=batch["input_ids"],
                                                attention_mask=batch["attention_mask"]).pooler_output
        return features.float().cpu().numpy()


class EncodecEmbedder:
    """Continuous EnCodec latents of a MusicGen's codec: one vector [D] per code frame, mono."""

    name = "encodec"
    _CHUNK_SECONDS = 30  # bounded memory for long audio

    def __init__(self, musicgen: MusicGen, revision: str | None = None):
        self.musicgen, self.revision = musicgen, revision
        self.sample_rate = musicgen.sample_rate

    def settings(self) -> dict:
        return {"kind": "encodec", "musicgen": self.musicgen.name, "revision": self.revision}

    @torch.no_grad()
    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Mono audio [S] at ``sample_rate`` -> latents [frames, D]."""
        encoder = self.musicgen.model.audio_encoder.encoder
        wav = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        chunk = self._CHUNK_SECONDS * self.sample_rate
        parts = [encoder(wav[None, None, i:i + chunk].to(self.musicgen.device))[0].T  # (frames, D)
                 for i in range(0, len(wav), chunk)]
        if not parts:
            raise ValueError("no audio to embed")
        return torch.cat(parts).float().cpu().numpy()


class EmbeddingCache:
    """Embeddings of audio files (or videos' soundtracks), computed once per file content and setting."""

    def __init__(self, root: str | Path):
        self.root = Path(root) / "embeddings"
        self.computed = 0  # files embedded (not read from the cache) by this instance

    def folder(self, embedder, seconds: float | None) -> Path:
        settings = {**embedder.settings(), "seconds": seconds}
        folder = self.root / settings_key(settings)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")
        return folder

    def embed_file(self, path: str | Path, embedder, seconds: float | None = None) -> np.ndarray:
        """Embeddings [n, D] of the first ``seconds`` (default: all) of a file's first audio stream."""
        target = self.folder(embedder, seconds) / f"{file_digest(Path(path))}.safetensors"
        if target.is_file():
            return load_file(target)["embedding"].numpy()
        audio = read_audio(path, embedder, seconds)
        embedding = np.ascontiguousarray(embedder.embed(audio), dtype=np.float32)
        save_atomic({"embedding": torch.from_numpy(embedding)}, target)
        self.computed += 1
        return embedding



def read_audio(path: str | Path, embedder, seconds: float | None = None) -> np.ndarray:
    """Mono float32 [S] at ``embedder.sample_rate``: the first ``seconds`` of a file's first audio stream.

    An embedder whose reference implementation resamples in its own way (resampy, julius,
    torchaudio) has a ``resample(audio, rate)`` method: the file is decoded at its own rate and
    handed to it. Any other is decoded and resampled in one pass by FFmpeg.
    """
    if hasattr(embedder, "resample"):
        rate = media.audio_sample_rate(path)
        audio = media.decode_audio(path, rate, 1, duration=seconds)[0]
        return np.ascontiguousarray(embedder.resample(audio, rate), dtype=np.float32)
    return media.decode_audio(path, embedder.sample_rate, 1, duration=seconds)[0]
