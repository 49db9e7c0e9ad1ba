"""Audio embeddings for FAD and diversity: CLAP windows, EnCodec frames, VGGish examples, PANNs clips; cached.

- ``ClapEmbedder``: transformers' ``ClapModel`` (``laion/clap-htsat-unfused`` by default; also
  ``laion/larger_clap_music``), mono audio at CLAP's own 48 kHz, cut into windows of the feature
  extractor's length (10 s for the published models; a last window shorter than a second is
  dropped unless it is the only one), each window one L2-normalised embedding. Windows never
  exceed that length, so the feature extractor's random crops never happen: embeddings are
  deterministic. ``embed_text`` gives CLAP text embeddings for the text-audio score.
- ``ClapMusicEmbedder``: the music CLAP with fadtk's windowing for its ``clap-laion-music`` FAD (10 s
  windows every second, zero-padded; 16-bit quantised input).
- ``EncodecEmbedder``: the continuous latents of the MusicGen's own EnCodec encoder (before
  quantisation), one vector per code frame (50 per second), mono.
- ``VggishEmbedder``: VGGish (Hershey et al. 2017; the network of Google's original FAD, Kilgour
  et al. 2019) as the ``frechet_audio_distance`` package (gudgud96, v0.3.4; the FAD most
  video-to-music papers cite) runs it with its defaults: harritaylor's PyTorch port
  (``torchvggish``) and weights, resampy to 16 kHz, non-overlapping 0.96 s log-mel examples, one
  128-d vector per example, taken before the last ReLU and without the PCA/quantisation.
- ``PannsEmbedder``: PANNs CNN14 (Kong et al. 2020, ``Cnn14_mAP=0.431.pth``) as the same package
  runs it for ``model_name="pann"`` at 32 kHz: resampy to 32 kHz, the whole file in one pass,
  one 2048-d "embedding" vector per file.

VGGish's and CNN14's weight files come through ``weights`` (torch's hub cache, fetched once; offline,
a missing file is one line); ``is_cached()`` says whether they are there without fetching.

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
from ..errors import MediaError, ModelError
from ..musicgen import MusicGen
from ..refs import first_line, load_pretrained
from ..data.cache import file_digest, save_atomic, settings_key
from . import CLAP_MUSIC, DEFAULT_CLAP, weights



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


class ClapMusicEmbedder(ClapEmbedder):
    """CLAP-music embeddings as fadtk computes its ``clap-laion-music`` FAD (``fadtk/model_loader.py``,
    ``CLAPLaionModel``; ``fadtk/fad.py`` for the resampling): LAION's music CLAP (HTSAT-base; here
    transformers' port, ``laion/larger_clap_music``); the file mixed to mono and resampled to 48 kHz by
    torchaudio's Kaiser-windowed sinc with fadtk's parameters; quantised to 16 bits
    (``int16_to_float32(float32_to_int16(x))``); windows of 10 s starting every second, each zero-padded
    to 10 s (so a 10 s piece gives 10 windows), one unit-length embedding per window. fadtk also writes
    the resampled audio to a 16-bit WAV in between: a rounding at the last bit that is not repeated here."""

    name = "clap-music"
    hop_seconds = 1

    def __init__(self, ref: str = CLAP_MUSIC, device: str | torch.device = "cpu", revision: str | None = None,
                 batch_size: int = 16):
        super().__init__(ref, device, revision, batch_size)

    @staticmethod
    def is_cached() -> bool:
        """Whether the music CLAP is in the Hugging Face cache."""
        from ..hub import is_cached

        return is_cached(CLAP_MUSIC)

    def settings(self) -> dict:
        return {**super().settings(), "kind": "clap-music", "hop_s": self.hop_seconds, "pad": "zeros",
                "quantise": "int16", "resampler": "torchaudio sinc_interp_kaiser (fadtk)"}

    def resample(self, audio: np.ndarray, rate: int) -> np.ndarray:
        """Mono audio at ``rate`` -> ``sample_rate``, as fadtk resamples (TORCHAUDIO_RESAMPLING, its default)."""
        import torchaudio

        if int(rate) == self.sample_rate:
            return np.asarray(audio, dtype=np.float32)
        wav = torch.as_tensor(np.asarray(audio, dtype=np.float32))[None]
        out = torchaudio.functional.resample(wav, int(rate), self.sample_rate, lowpass_filter_width=64,
                                             rolloff=0.9475937167399596, resampling_method="sinc_interp_kaiser",
                                             beta=14.769656459379492)
        return out[0].numpy()

    def windows(self, audio: np.ndarray) -> list[np.ndarray]:
        """Mono audio [S] -> 16-bit-quantised windows of exactly ``window`` samples, one per second."""
        quantised = (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0
        hop = self.hop_seconds * self.sample_rate
        return [np.pad(w, (0, self.window - len(w))) for w in
                (quantised[i:i + self.window] for i in range(0, max(len(quantised), 1), hop))]


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


class _ResampledNetwork:
    """What VGGish and PANNs share: one weight file at ``url``, audio resampled by resampy (as
    frechet_audio_distance loads files), and a shortest input the network can take."""

    name: str
    what: str            # the network's name in messages
    url: str
    sample_rate: int
    _MIN_SAMPLES: int
    model: torch.nn.Module

    @classmethod
    def is_cached(cls) -> bool:
        return weights.is_cached(cls.url)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def resample(self, audio: np.ndarray, rate: int) -> np.ndarray:
        """Mono audio at ``rate`` -> ``sample_rate``, with resampy's default filter (kaiser_best) as
        ``frechet_audio_distance`` loads files."""
        audio = np.asarray(audio, dtype=np.float32)
        if int(rate) == self.sample_rate:
            return audio
        import resampy

        return resampy.resample(audio, int(rate), self.sample_rate)

    def _checked(self, audio: np.ndarray) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        if len(audio) < self._MIN_SAMPLES:
            raise ValueError(f"{self.what} needs at least {self._MIN_SAMPLES / self.sample_rate:.3f} s of audio, "
                             f"got {len(audio) / self.sample_rate:.3f} s")
        return audio


VGGISH_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"


class VggishEmbedder(_ResampledNetwork):
    """VGGish embeddings, 16 kHz mono, one 128-d vector per non-overlapping 0.96 s example.

    Follows ``frechet_audio_distance`` 0.3.4 (``FrechetAudioDistance(model_name="vggish")`` with its
    defaults ``use_pca=False, use_activation=False``): the file is resampled to 16 kHz by resampy
    (kaiser_best), ``torchvggish``'s ``waveform_to_examples`` cuts it into 96-frame log-mel examples
    (25 ms windows, 10 ms hop, 64 bands 125-7500 Hz, log(mel + 0.01)) with no overlap, the remainder
    shorter than 0.96 s dropped, and each example's embedding is the 128-d output of the last linear
    layer before its ReLU (Google's current ``vggish_slim`` has no activation there either), with
    no PCA or 8-bit quantisation. Weights: harritaylor's port of Google's checkpoint
    (``vggish-10086976.pth``), the file ``torchvggish`` and the reference load.

    Google's original FAD (google-research ``frechet_audio_distance``) differs in its input: it
    takes 16 kHz WAV as is (no resampler), peak-normalises each clip (``x / max(0.1, max(x))``) and
    makes one example per whole second (each 1 s chunk's first 0.96 s; a stride is optional). We
    follow the PyTorch package, whose numbers the video-to-music papers report.
    """

    name, what = "vggish", "VGGish"
    sample_rate = 16000
    url = VGGISH_URL
    _BATCH = 128  # examples per forward pass (the reference runs a file in one batch; same values)
    _MIN_SAMPLES = 400 + 95 * 160  # 96 log-mel frames of 25 ms at a 10 ms hop: one example

    def __init__(self, device: str | torch.device = "cpu"):
        from torchvggish.torchvggish import VGG, make_layers

        state = weights.load_state_dict(self.url, self.what)
        model = VGG(make_layers(), postprocess=False)
        weights.load_into(model, state, self.what, weights.cached_path(self.url))
        # use_activation=False: the reference drops the embedding stack's last ReLU
        model.embeddings = torch.nn.Sequential(*list(model.embeddings.children())[:-1])
        self.model = model.to(device).eval()

    def settings(self) -> dict:
        return {"kind": "vggish", "weights": weights.filename_of(self.url), "example_s": 0.96, "hop_s": 0.96,
                "activation": False, "pca": False, "resampler": "resampy kaiser_best"}

    @torch.no_grad()
    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Mono audio [S] at 16 kHz -> embeddings [examples, 128] (one per whole 0.96 s)."""
        from torchvggish.vggish_input import waveform_to_examples

        examples = waveform_to_examples(self._checked(audio), self.sample_rate, return_tensor=True).detach()
        out = [self.model(examples[i:i + self._BATCH].to(self.device)).float().cpu()
               for i in range(0, len(examples), self._BATCH)]
        return torch.cat(out).numpy()


PANNS_URL = "https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth"


class _ConvBlock(torch.nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn1, self.bn2 = torch.nn.BatchNorm2d(cout), torch.nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return torch.nn.functional.avg_pool2d(x, kernel_size=pool)


class Cnn14(torch.nn.Module):
    """PANNs CNN14 at 32 kHz, inference only: the layers (and state-dict keys) of
    ``audioset_tagging_cnn``'s ``Cnn14`` (copied verbatim by ``panns_inference`` and
    ``frechet_audio_distance``), so ``Cnn14_mAP=0.431.pth`` loads strictly.

    Not imported from ``panns_inference``: importing that package runs ``wget`` for a label file
    into ``~/panns_data`` (and imports matplotlib). In eval mode the original's SpecAugment, mixup
    and dropouts do nothing, so they are left out; ``forward`` returns the "embedding" output.
    """

    def __init__(self, sample_rate: int = 32000, window_size: int = 1024, hop_size: int = 320, mel_bins: int = 64,
                 fmin: int = 50, fmax: int = 16000, classes_num: int = 527):
        super().__init__()
        from torchlibrosa.stft import LogmelFilterBank, Spectrogram

        self.spectrogram_extractor = Spectrogram(n_fft=window_size, hop_length=hop_size, win_length=window_size,
                                                 window="hann", center=True, pad_mode="reflect",
                                                 freeze_parameters=True)
        self.logmel_extractor = LogmelFilterBank(sr=sample_rate, n_fft=window_size, n_mels=mel_bins, fmin=fmin,
                                                 fmax=fmax, ref=1.0, amin=1e-10, top_db=None, freeze_parameters=True)
        self.bn0 = torch.nn.BatchNorm2d(mel_bins)
        channels = [1, 64, 128, 256, 512, 1024, 2048]
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", _ConvBlock(channels[i], channels[i + 1]))
        self.fc1 = torch.nn.Linear(2048, 2048, bias=True)
        self.fc_audioset = torch.nn.Linear(2048, classes_num, bias=True)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Waveforms [B, S] -> embeddings [B, 2048] (ReLU of fc1 on the max + mean over time)."""
        x = self.logmel_extractor(self.spectrogram_extractor(waveform))  # (B, 1, frames, mels)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for i in range(6):
            x = getattr(self, f"conv_block{i + 1}")(x, (2, 2) if i < 5 else (1, 1))
        x = torch.mean(x, dim=3)
        x = torch.max(x, dim=2).values + torch.mean(x, dim=2)
        return torch.relu(self.fc1(x))


class PannsEmbedder(_ResampledNetwork):
    """PANNs CNN14 embeddings, 32 kHz mono, one 2048-d vector per file.

    Follows ``frechet_audio_distance`` 0.3.4 for ``model_name="pann", sample_rate=32000``: the
    file is resampled to 32 kHz by resampy (kaiser_best) and the whole of it goes through CNN14 in
    one pass (log-mel 1024/320, 64 bands 50-16000 Hz; global max + mean pooling over time), its
    "embedding" output (after fc1's ReLU) is the file's one vector: FAD on PANNs compares
    distributions of whole pieces, so it needs many pieces. (That package concatenates these
    vectors into one flat array before its statistics, so its FAD is over scalars, a bug reported
    as gudgud96/frechet-audio-distance#37; we keep [files, 2048], as intended there.)
    Weights: ``Cnn14_mAP=0.431.pth`` (Kong et al., zenodo record 3987831), its "model" entry.
    """

    name, what = "panns", "PANNs CNN14"
    sample_rate = 32000
    url = PANNS_URL
    _MIN_SAMPLES = 31 * 320  # 32 STFT frames (centred): the fewest that survive five 2x poolings in time

    def __init__(self, device: str | torch.device = "cpu"):
        state = weights.load_state_dict(self.url, self.what, key="model")
        model = Cnn14()
        weights.load_into(model, state, self.what, weights.cached_path(self.url))
        self.model = model.to(device).eval()

    def settings(self) -> dict:
        return {"kind": "panns", "weights": weights.filename_of(self.url), "window": "whole file",
                "resampler": "resampy kaiser_best"}

    @torch.no_grad()
    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Mono audio [S] at 32 kHz -> the file's embedding [1, 2048]."""
        wav = torch.from_numpy(self._checked(audio))[None].to(self.device)
        return self.model(wav).float().cpu().numpy()


class EmbeddingCache:
    """Embeddings of audio files (or videos' soundtracks), computed once per file content and setting."""

    def __init__(self, root: str | Path):
        self.root = Path(root) / "embeddings"
        self.computed = 0  # files embedded (not read from the cache) by this instance

    def folder(self, settings: dict) -> Path:
        folder = self.root / settings_key(settings)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")
        return folder

    def cached(self, digest: str, settings: dict, compute) -> np.ndarray:
        """The embedding of the file with sha256 ``digest`` under ``settings``: read from the cache, or
        ``compute()``d and saved."""
        target = self.folder(settings) / f"{digest}.safetensors"
        if target.is_file():
            return load_file(target)["embedding"].numpy()
        embedding = np.ascontiguousarray(compute(), dtype=np.float32)
        save_atomic({"embedding": torch.from_numpy(embedding)}, target)
        self.computed += 1
        return embedding

    def embed_file(self, path: str | Path, embedder, seconds: float | None = None) -> np.ndarray:
        """Embeddings [n, D] of the first ``seconds`` (default: all) of a file's first audio stream."""
        def compute():
            try:
                return embedder.embed(read_audio(path, embedder, seconds))
            except ValueError as err:  # too short for this network (VGGish needs 0.975 s): that file is skipped
                raise MediaError(path, f"{embedder.name}: {err}") from None

        return self.cached(file_digest(Path(path)), {**embedder.settings(), "seconds": seconds}, compute)


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
