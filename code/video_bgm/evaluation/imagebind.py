"""ImageBind score: the cosine similarity of ImageBind's vision embedding of a video and its audio
embedding of the music, as Diff-V2M reports it ("IB") and as GMELab / MMAudio-style evaluation
scripts compute it ("ImageBind score").

What the reference computes (Diff-V2M, ``inference/imagebind_score.py`` of github.com/Tayjsl97/Diff-V2M-Code;
the same in the "calculate_imagebind_score" scripts that follow it):

- vision: ``imagebind.data.load_and_transform_video_data([video])`` with its defaults, i.e. pytorchvideo's
  ``ConstantClipsPerVideoSampler(clip_duration=2, clips_per_video=5)`` (as of the pytorchvideo commits
  ImageBind pins, 28fe037 and 6cdc929; the 0.1.5 release on PyPI spaces clips by duration / 5 and
  cannot run ``imagebind.data``) over the video's duration
  (decord: frames / average fps): 5 clips of 2 s whose starts are evenly spaced from 0 to
  duration - 2 (all at 0 for videos of 2 s or less); the frames of a clip are those with index in
  [ceil(fps * start), ceil(fps * end)), of which ``UniformTemporalSubsample(2)`` keeps the first and
  the last; pixels /255, ``ShortSideScale(224)`` (bilinear, no antialias), normalised with CLIP's
  mean/std, then 3 spatial crops of 224 x 224 (left/centre/right, or top/centre/bottom): 15 views
  of 2 frames.
- audio: ``imagebind.data.load_and_transform_audio_data([music])``: the file's channels at its
  own rate, ``torchaudio.functional.resample`` to 16 kHz, the same sampler with 3 clips of 2 s, each
  clip's mean subtracted (in place, as the reference does: overlapping clips see the earlier clip's
  subtraction), ``torchaudio.compliance.kaldi.fbank`` of the first channel (128 mel bins, 25 ms
  Hanning frames every 10 ms, htk_compat, no energy, no dither), padded or cut to 204 frames,
  normalised with mean -4.268 and std 9.138: 3 views [1, 128, 204].
- ``imagebind_huge`` embeds every view; each view's embedding is L2-normalised (audio's then scaled
  by 20), and the views of a file are averaged (not re-normalised): one vision embedding and one
  audio embedding [1024] per pair.
- the score of a pair is ``torch.nn.CosineSimilarity(dim=1, eps=1e-6)`` of the two, a number in
  [-1, 1]; a set's score is the mean over its pairs. Diff-V2M's code reports that mean as is (no
  x100).

This module does the same with our own code: frames and audio are decoded by PyAV
(``video_bgm.media``) instead of decord and torchaudio/torchcodec, and the network is the
``imagebind`` package's own ``ImageBindModel`` (``imagebind_huge``'s settings) with Meta's weights,
``imagebind_huge.pth``, fetched into torch's hub cache by :mod:`.weights`. Differences from the
reference: frame ``i`` is the frame shown at ``i / fps`` (decord counts decoded frames: the same for
constant-frame-rate video); a source with more than two channels is first mixed down to stereo by
FFmpeg (the reference takes its first channel as decoded). Both read frames upright, rotation
metadata applied (decord 0.6.0 does so too). On the test videos (landscape, portrait, rotated,
10 and 29.97 fps) and WAV files, the views equal ``imagebind.data``'s bit for bit.

Licence: ImageBind's code and weights are Meta's, under CC BY-NC-SA 4.0 (the repository's LICENSE
file; its README says CC-BY-NC 4.0): non-commercial use only. Nothing of ImageBind's code is copied
here: the network comes from the ``imagebind`` package (``imagebind-unofficial`` on PyPI, a verbatim
copy of facebookresearch/ImageBind at 53680b0), installed separately, and its weights are
downloaded by the user. Only ``imagebind.models`` is imported: ``imagebind/__init__.py`` imports
``imagebind.data``, which needs pytorchvideo, decord and ``pkg_resources``, none of which the
network needs (pytorchvideo 0.1.5 on PyPI fails to import beside torchvision >= 0.17, and
setuptools >= 81 has no ``pkg_resources``).

Embeddings are cached per file content (sha256) and settings by :class:`.embeddings.EmbeddingCache`
(``<cache>/embeddings/<settings key>/<sha256>.safetensors``), beside the audio embeddings.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from .. import media
from ..data.cache import file_digest, settings_key
from ..errors import MediaError, ModelError
from ..refs import first_line
from . import weights
from .embeddings import EmbeddingCache

URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
WHAT = "ImageBind"
INSTALL = "pip install --no-deps imagebind-unofficial==0.1.1 (its own requirements cannot go beside ours)"

# imagebind.data's defaults
CLIP_SECONDS = 2
VIDEO_CLIPS = 5
FRAMES_PER_CLIP = 2  # UniformTemporalSubsample(num_samples=clip_duration)
SIZE = 224
CROPS = 3
VISION_MEAN = (0.48145466, 0.4578275, 0.40821073)
VISION_STD = (0.26862954, 0.26130258, 0.27577711)
AUDIO_RATE = 16000
AUDIO_CLIPS = 3
MEL_BINS = 128
TARGET_LENGTH = 204
FRAME_LENGTH_MS = 25
FRAME_SHIFT_MS = 10
AUDIO_MEAN = -4.268
AUDIO_STD = 9.138

_KEEP = ("vision", "audio")  # the modalities the score uses; the others are dropped after loading


# ---------------------------------------------------------------------------------------------
# The network


def model_module() -> types.ModuleType:
    """``imagebind.models.imagebind_model`` of the installed ``imagebind`` package (ModelError if absent).

    The package's ``__init__`` imports ``imagebind.data`` (pytorchvideo, decord, pkg_resources); when
    that import fails, the package is set up without running its ``__init__`` and only the network's
    modules are imported.
    """
    name = "imagebind.models.imagebind_model"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("imagebind")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(WHAT, f"the imagebind package is not installed: {INSTALL}")
    try:
        return importlib.import_module(name)
    except Exception:  # imagebind.data's imports: pytorchvideo, decord, pkg_resources
        for key in [k for k in sys.modules if k == "imagebind" or k.startswith("imagebind.")]:
            del sys.modules[key]
    package = importlib.util.module_from_spec(spec)  # the package without running its __init__
    sys.modules["imagebind"] = package
    try:
        return importlib.import_module(name)
    except Exception as err:
        for key in [k for k in sys.modules if k == "imagebind" or k.startswith("imagebind.")]:
            del sys.modules[key]
        raise ModelError(WHAT, f"cannot import ImageBind's network ({first_line(err)}): {INSTALL}") from None


def load_network(device: str | torch.device = "cpu") -> torch.nn.Module:
    """``imagebind_huge`` with Meta's weights from torch's hub cache (fetched once), in eval mode,
    keeping only its vision and audio branches."""
    state = weights.load_state_dict(URL, WHAT)  # before building: offline is one line at once
    module = model_module()
    model = module.imagebind_huge(pretrained=False)  # its random initialisation: 7-25 s on 2 CPU cores
    weights.load_into(model, state, WHAT, weights.cached_path(URL))
    del state
    for part in (model.modality_preprocessors, model.modality_trunks, model.modality_heads,
                 model.modality_postprocessors):
        for key in [k for k in part.keys() if k not in _KEEP]:
            del part[key]
    return model.to(device).eval()


# ---------------------------------------------------------------------------------------------
# Preprocessing (imagebind.data's, on frames and audio decoded by PyAV)


def clip_times(duration: float, clips: int, clip_seconds: float = CLIP_SECONDS) -> list[tuple[Fraction, Fraction]]:
    """(start, end) s of each clip: pytorchvideo's ConstantClipsPerVideoSampler read to its last clip."""
    latest = Fraction(max(duration - clip_seconds, 0))
    step = Fraction(latest, max(clips - 1, 1))
    times = []
    for index in range(clips):
        start = step * index
        times.append((start, start + clip_seconds))
        if step * (index + 1) > latest:
            break
    return times


def frame_indices(duration: float, fps: float, count: int) -> list[list[int]]:
    """For each video clip, the indices of the frames it keeps (decord's frame ranges, first and last)."""
    out = []
    for start, end in clip_times(duration, VIDEO_CLIPS):
        first = math.ceil(fps * start)
        stop = min(math.ceil(fps * end), count)
        if stop <= first:
            raise ValueError(f"no frames in [{float(start):g}, {float(end):g}) s")
        picks = torch.linspace(0, stop - first - 1, FRAMES_PER_CLIP).clamp(0, stop - first - 1).long()
        out.append([first + int(i) for i in picks])
    return out


def _short_side_scale(clip: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """[C, T, H, W] float32 with its shorter side scaled to ``size`` (pytorchvideo's short_side_scale)."""
    _, _, h, w = clip.shape
    if w < h:
        new_h, new_w = int(math.floor((float(h) / w) * size)), size
    else:
        new_h, new_w = size, int(math.floor((float(w) / h) * size))
    return torch.nn.functional.interpolate(clip, size=(new_h, new_w), mode="bilinear", align_corners=False)


def _crop(clip: torch.Tensor, index: int, size: int = SIZE) -> torch.Tensor:
    """Spatial crop ``index`` (0, 1, 2) of a [C, T, H, W] clip (imagebind.data.uniform_crop)."""
    height, width = clip.shape[2], clip.shape[3]
    y = int(math.ceil((height - size) / 2))
    x = int(math.ceil((width - size) / 2))
    if height > width:
        y = {0: 0, 1: y, 2: height - size}[index]
    else:
        x = {0: 0, 1: x, 2: width - size}[index]
    return clip[:, :, y:y + size, x:x + size]


def transform_frames(clips: list[torch.Tensor]) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] of each clip -> vision input [clips * 3, 3, T, 224, 224]."""
    mean = torch.as_tensor(VISION_MEAN, dtype=torch.float32)[:, None, None, None]
    std = torch.as_tensor(VISION_STD, dtype=torch.float32)[:, None, None, None]
    views = []
    for frames in clips:
        clip = frames.permute(3, 0, 1, 2).to(torch.float32) / 255.0  # [C, T, H, W]
        clip = _short_side_scale(clip)
        clip = clip.sub(mean).div(std)
        views.extend(_crop(clip, index) for index in range(CROPS))
    return torch.stack(views)


def video_input(path, seconds: float | None = None) -> torch.Tensor:
    """A video's vision input [15, 3, 2, 224, 224] (of its first ``seconds``, default: all of it)."""
    info = media.probe_video(path)
    count = info.num_frames
    if seconds is not None:
        if seconds <= 0:
            raise ValueError(f"seconds must be positive, got {seconds}")
        count = min(count, max(1, math.ceil(seconds * info.fps - 1e-6)))
    indices = frame_indices(count / info.fps, info.fps, count)
    frames: dict[int, torch.Tensor] = {}
    for index in sorted({i for clip in indices for i in clip}):
        # the frame shown at index / fps: frame `index` of a constant-frame-rate video
        got, _ = media.sample_frames(path, info.fps, info, start=index / info.fps, duration=0.5 / info.fps)
        frames[index] = got[0]
    return transform_frames([torch.stack([frames[i] for i in clip]) for clip in indices])


def melspec(clip: torch.Tensor) -> torch.Tensor:
    """A waveform clip [C, S] at 16 kHz -> [1, 128, 204] (imagebind.data.waveform2melspec; the clip's
    mean is subtracted in place, as there)."""
    import torchaudio

    clip -= clip.mean()
    fbank = torchaudio.compliance.kaldi.fbank(
        clip, htk_compat=True, sample_frequency=AUDIO_RATE, use_energy=False, window_type="hanning",
        num_mel_bins=MEL_BINS, dither=0.0, frame_length=FRAME_LENGTH_MS, frame_shift=FRAME_SHIFT_MS)
    fbank = fbank.transpose(0, 1)
    missing = TARGET_LENGTH - fbank.size(1)
    if missing > 0:
        fbank = torch.nn.functional.pad(fbank, (0, missing), mode="constant", value=0)
    elif missing < 0:
        fbank = fbank[:, :TARGET_LENGTH]
    return fbank.unsqueeze(0)


def transform_waveform(waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """float32 [channels, samples] at ``sample_rate`` -> audio input [3, 1, 128, 204].

    ``waveform`` is changed in place (a copy is made first only when it is resampled), as in the reference.
    """
    import torchaudio

    if sample_rate != AUDIO_RATE:
        waveform = torchaudio.functional.resample(waveform, orig_freq=sample_rate, new_freq=AUDIO_RATE)
    views = []
    for start, end in clip_times(waveform.size(1) / AUDIO_RATE, AUDIO_CLIPS):
        clip = waveform[:, int(start * AUDIO_RATE):int(end * AUDIO_RATE)]
        views.append(melspec(clip))
    mean = torch.as_tensor(AUDIO_MEAN, dtype=torch.float32)
    std = torch.as_tensor(AUDIO_STD, dtype=torch.float32)
    return torch.stack([view.sub(mean).div(std) for view in views])


def audio_input(path, seconds: float | None = None) -> torch.Tensor:
    """A file's audio input [3, 1, 128, 204] (of its first ``seconds``, default: all of it)."""
    rate = media.audio_sample_rate(path)
    # both channels of a stereo file; a mono file's one channel twice, which the reference's
    # mean and first channel read the same
    audio = media.decode_audio(path, rate, 2, duration=seconds)
    if audio.shape[1] < rate * FRAME_LENGTH_MS / 1000:
        raise MediaError(path, "too little audio to embed (less than 25 ms)")
    return transform_waveform(torch.from_numpy(audio), rate)


# ---------------------------------------------------------------------------------------------
# The scorer


class ImageBindScorer:
    """ImageBind embeddings of videos and music files, and the score of a pair (see the module docstring).

    Building one fails at once, in one line, when the ``imagebind`` package is missing or the weight
    file is neither cached nor downloadable; the network itself (about 4.5 GB) is loaded on the first
    embedding that is not cached. Embeddings are kept in memory per file content and, with
    ``cache_dir``, on disk (``<cache_dir>/embeddings/<settings key>/<sha256>.safetensors``).
    """

    name = "imagebind"

    def __init__(self, device: str | torch.device = "cpu", cache_dir: str | Path | None = None):
        self.device = torch.device(device)
        self._store = None if cache_dir is None else EmbeddingCache(cache_dir)
        self.computed = 0  # embeddings computed (not read from a cache) by this instance
        self._network = None
        self._memory: dict[tuple, np.ndarray] = {}
        weights.fetch(URL, WHAT)
        model_module()
        if importlib.util.find_spec("torchaudio") is None:  # its Kaldi fbank and resampler are the reference's
            raise ModelError(WHAT, "torchaudio is not installed: pip install -r requirements.txt")

    @staticmethod
    def is_cached() -> bool:
        """Whether ImageBind's weight file is already in torch's hub cache."""
        return weights.is_cached(URL)

    @property
    def network(self) -> torch.nn.Module:
        if self._network is None:
            self._network = load_network(self.device)
        return self._network

    def settings(self) -> dict:
        return {"kind": "imagebind", "weights": weights.filename_of(URL),
                "vision": self._settings("vision", None), "audio": self._settings("audio", None)}

    @staticmethod
    def _settings(modality: str, seconds: float | None) -> dict:
        common = {"kind": f"imagebind-{modality}", "weights": weights.filename_of(URL), "seconds": seconds,
                  "clip_seconds": CLIP_SECONDS}
        if modality == "vision":
            return {**common, "clips": VIDEO_CLIPS, "frames": FRAMES_PER_CLIP, "size": SIZE, "crops": CROPS}
        return {**common, "clips": AUDIO_CLIPS, "rate": AUDIO_RATE, "mel_bins": MEL_BINS,
                "target_length": TARGET_LENGTH}

    @torch.no_grad()
    def embed_inputs(self, modality: str, views: torch.Tensor) -> np.ndarray:
        """The network's embedding [D] of one file's views (the mean of their normalised embeddings)."""
        out = self.network({modality: views[None].to(self.device)})[modality]
        return out[0].float().cpu().numpy()

    def embed_video(self, path, seconds: float | None = None) -> np.ndarray:
        """ImageBind's vision embedding [D] of a video (its first ``seconds``; default: all of it)."""
        return self._cached(path, "vision", seconds, lambda: video_input(path, seconds))

    def embed_audio(self, path, seconds: float | None = None) -> np.ndarray:
        """ImageBind's audio embedding [D] of a file's first audio stream (its first ``seconds``)."""
        return self._cached(path, "audio", seconds, lambda: audio_input(path, seconds))

    @staticmethod
    def score(video_embedding: np.ndarray, audio_embedding: np.ndarray) -> float:
        """Cosine similarity of the two embeddings (``torch.nn.CosineSimilarity(dim=1, eps=1e-6)``), in [-1, 1]."""
        v = torch.as_tensor(np.asarray(video_embedding, dtype=np.float32))[None]
        a = torch.as_tensor(np.asarray(audio_embedding, dtype=np.float32))[None]
        return float(torch.nn.functional.cosine_similarity(v, a, dim=1, eps=1e-6)[0])

    def _cached(self, path, modality: str, seconds: float | None, make_input) -> np.ndarray:
        settings = self._settings(modality, seconds)
        digest = file_digest(Path(path))
        key = (settings_key(settings), digest)
        if key not in self._memory:
            def compute():
                self.computed += 1
                return self.embed_inputs(modality, make_input())

            self._memory[key] = (self._store.cached(digest, settings, compute) if self._store is not None
                                 else np.ascontiguousarray(compute(), dtype=np.float32))
        return self._memory[key]
