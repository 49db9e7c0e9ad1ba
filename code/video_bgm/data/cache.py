"""Feature cache: frame features and EnCodec codes, computed once per clip.

Frozen encoders never change during training, so each clip's frame features (per frame
encoder and fps) and the EnCodec codes of its music (per MusicGen) are computed once and
stored under the cache folder, keyed by the file's content and those settings:

    <cache>/frames/<frame encoder + fps key>/<sha256 of the video>.safetensors   features [T, F] fp16
    <cache>/codes/<musicgen key>/<sha256 of the music file>.safetensors         codes [K, L] int16

Changing the frame encoder (any of its settings, its preprocessing too) or fps invalidates only
the frames; changing MusicGen only the codes. A model with ``motion`` keeps its features in a folder
of their own, each frame's motion channels appended ([T, F + motion.CHANNELS]). Decoding runs in parallel worker threads (PyAV and
decord release the GIL); the frozen models run in the main thread, batched, on the training device.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from tqdm import tqdm

from .. import media, motion
from ..outputs import write_atomic
from ..config import VideoModelConfig
from ..errors import MediaError
from ..frames import FrameEncoder
from ..musicgen import MusicGen
from .clips import Clip, Skipped

_ENCODE_SECONDS = 30  # EnCodec encodes long music in chunks of this many seconds (bounded memory)


@dataclass(frozen=True)
class CachedClip:
    clip: Clip
    frames: Path           # safetensors with "features" [T, F]
    codes: Path            # safetensors with "codes" [K, L]


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's content: the cache key that survives renames and moves."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def settings_key(settings: dict) -> str:
    """A short folder name for a set of settings, with the settings written beside it."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def frames_key(config: VideoModelConfig) -> dict:
    """Every frame-encoder setting: features made one way (tensor or PIL resize) are never reused for another."""
    key = {**dataclasses.asdict(config.frame_encoder), "fps": config.fps}
    if config.motion:  # only then: the folders of models without motion keep their names
        key["motion"] = {"channels": motion.CHANNELS, "width": motion.WIDTH, "unit": motion.UNIT,
                         "grey": "luma grid"}
    return key


def codes_key(config: VideoModelConfig, musicgen: MusicGen) -> dict:
    return {"musicgen": config.musicgen, "revision": config.musicgen_revision,
            "channels": musicgen.audio_channels, "codebooks": musicgen.num_codebooks}


class FeatureCache:
    def __init__(self, root: Path, config: VideoModelConfig, musicgen: MusicGen):
        self.motion = config.motion
        self.frames_dir = self._folder(Path(root) / "frames", frames_key(config))
        self.codes_dir = self._folder(Path(root) / "codes", codes_key(config, musicgen))

    @staticmethod
    def _folder(parent: Path, settings: dict) -> Path:
        folder = parent / settings_key(settings)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")
        return folder

    def paths(self, video_digest: str, audio_digest: str) -> tuple[Path, Path]:
        return self.frames_dir / f"{video_digest}.safetensors", self.codes_dir / f"{audio_digest}.safetensors"


def prepare_features(clips: list[Clip], cache: FeatureCache, frame_encoder: FrameEncoder, musicgen: MusicGen,
                     fps: float, num_workers: int = 2, show_progress: bool = True
                     ) -> tuple[list[CachedClip], list[Skipped]]:
    """Make sure every clip's features are cached; returns the usable clips and the skipped ones.

    A clip that cannot be read is reported once (as it happens) and skipped; it does not stop
    the others.
    """
    ready, skipped = [], []
    bar = tqdm(total=len(clips), desc="preparing features", unit="clip", disable=not show_progress)

    def digest(clip: Clip) -> tuple[Path, Path] | MediaError:
        try:
            video_digest = file_digest(clip.video)
            audio_digest = video_digest if clip.audio == clip.video else file_digest(clip.audio)
        except OSError as err:  # one unreadable file is that clip's problem, not the run's
            return _unreadable(err, clip)
        return cache.paths(video_digest, audio_digest)

    def decode(clip: Clip, frames_path: Path, codes_path: Path):
        """Worker: decode what is not cached yet (frames, with their motion channels for a model
        with motion, and/or music) for one clip."""
        frames = audio = None
        if not frames_path.exists():
            if cache.motion:
                pictures, _, channels = media.sample_frames_and_motion(clip.video, fps)
                frames = (pictures, channels)
            else:
                frames = (media.sample_frames(clip.video, fps)[0], None)
        if not codes_path.exists():
            audio = media.decode_audio(clip.audio, musicgen.sample_rate, musicgen.audio_channels)
            if audio.shape[1] < musicgen.sample_rate / musicgen.frame_rate:
                raise MediaError(clip.audio, "music track is empty")
        return frames, audio

    def skip(clip: Clip, err: Exception) -> None:
        skipped.append(Skipped(clip.id, str(err)))
        bar.write(f"skipping {clip.id}: {err}", file=sys.stderr)

    with ThreadPoolExecutor(num_workers) as pool:
        paths = list(pool.map(digest, clips))
        # Bounded look-ahead: at most 2 decoded clips per worker wait in memory for the encoders.
        window = 2 * num_workers
        pending = {}

        def finish_oldest():
            j = min(pending)
            _finish(pending.pop(j), clips[j], paths[j], frame_encoder, musicgen, ready, skip)
            bar.update()

        for i, clip in enumerate(clips):
            if isinstance(paths[i], MediaError):
                skip(clip, paths[i])
                bar.update()
                continue
            frames_path, codes_path = paths[i]
            if frames_path.exists() and codes_path.exists():
                ready.append(CachedClip(clip, frames_path, codes_path))
                bar.update()
                continue
            pending[i] = pool.submit(decode, clip, frames_path, codes_path)
            while len(pending) >= window:
                finish_oldest()
        while pending:
            finish_oldest()
    bar.close()
    ready.sort(key=lambda c: c.clip.id)
    return ready, skipped


def _finish(future, clip: Clip, paths: tuple[Path, Path], frame_encoder: FrameEncoder, musicgen: MusicGen,
            ready: list, skip) -> None:
    """Main thread: run the frozen encoders on a decoded clip and store the results atomically."""
    frames_path, codes_path = paths
    try:
        frames, audio = future.result()
    except MediaError as err:
        skip(clip, err)
        return
    except OSError as err:
        skip(clip, _unreadable(err, clip))
        return
    if frames is not None:
        pictures, channels = frames
        features = frame_encoder.encode(pictures)
        if channels is not None:
            features = motion.append(features, channels)
        features = features.to(torch.float16).cpu()
        save_atomic({"features": features.contiguous()}, frames_path)
    if audio is not None:
        codes = encode_music(musicgen, torch.from_numpy(audio))
        save_atomic({"codes": codes.to(torch.int16).cpu().contiguous()}, codes_path)
    ready.append(CachedClip(clip, frames_path, codes_path))


def _unreadable(err: OSError, clip: Clip) -> MediaError:
    return MediaError(err.filename or clip.video, f"cannot read ({err.strerror or err})")


@torch.no_grad()
def encode_music(musicgen: MusicGen, audio: torch.Tensor) -> torch.Tensor:
    """Music [C, S] at MusicGen's sample rate -> codes [K, L], encoded in chunks of whole frames."""
    hop = round(musicgen.sample_rate / musicgen.frame_rate)
    chunk = _ENCODE_SECONDS * musicgen.sample_rate // hop * hop
    usable = audio.shape[1] // hop * hop  # whole code frames only
    parts = [musicgen.encode_audio(audio[None, :, i:i + chunk].to(musicgen.device))[0]
             for i in range(0, usable, chunk)]
    return torch.cat(parts, dim=1)


def save_atomic(tensors: dict, path: Path) -> None:
    write_atomic(path, save(tensors))  # serialised in memory: a full disk is an OSError with its cause


def load_cached(clip: CachedClip) -> tuple[torch.Tensor, torch.Tensor]:
    """(features [T, F] float32, codes [K, L] int64) of a cached clip."""
    return load_file(clip.frames)["features"].float(), load_file(clip.codes)["codes"].long()
