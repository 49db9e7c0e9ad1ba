"""Music stems with Demucs: a clip's soundtrack -> (music, vocals), the music being Demucs's ``no_vocals``.

Demucs (the ``demucs`` package) is loaded by name (``htdemucs`` by default) from its own caches: the
Hugging Face cache or the torch hub cache (``~/.cache/torch/hub/checkpoints``), where it fetches the
weights on first use. Offline without them is one line naming the file to fetch. ``repo`` is Demucs's
own ``--repo``: a folder of ``<signature>.th`` model packages (how the tests give it a randomly
initialised model of the real architecture).
"""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ..errors import ModelError
from ..outputs import write_atomic
from .settings import DEFAULT_DEMUCS

SOURCES = ("drums", "bass", "other", "vocals")  # Demucs's four stems; no_vocals is the sum of the first three
# The released htdemucs's architecture (its training grid, demucs/grids/mmi.py: dconv_mode 3, 5 transformer
# layers, a 512-channel bottleneck; trained on 7.8 s segments): 41.98 M parameters.
HTDEMUCS_ARCHITECTURE = dict(dconv_mode=3, t_layers=5, t_dropout=0.02, bottom_channels=512, segment=Fraction(39, 5))


class Separator:
    """A Demucs model, in eval mode on ``device``: ``separate`` gives the music and vocals stems."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", name: str = DEFAULT_DEMUCS):
        if "vocals" not in model.sources:
            raise ModelError(name, f"this Demucs model has no vocals stem (it has {', '.join(model.sources)})")
        self.model, self.name = model.to(device).eval(), name
        self.device = torch.device(device)
        self.sample_rate, self.channels = model.samplerate, model.audio_channels
        self.vocals = list(model.sources).index("vocals")

    @torch.no_grad()
    def separate(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 [C, S] at ``sample_rate`` (C = ``channels``) -> (music, vocals), each [C, S]."""
        return self.separate_batch([audio])[0]

    @torch.no_grad()
    def separate_batch(self, clips: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Several soundtracks at once (one forward pass per segment for all of equal length)."""
        from demucs.apply import apply_model

        out: list = [None] * len(clips)
        by_length: dict[int, list[int]] = {}
        for i, audio in enumerate(clips):
            by_length.setdefault(audio.shape[1], []).append(i)
        for indices in by_length.values():
            mix = torch.from_numpy(np.stack([clips[i] for i in indices])).float()  # [B, C, S]
            # Demucs separates a standardised mix (as its own CLI does) and scales the stems back.
            ref = mix.mean(dim=1)
            mean, std = ref.mean(dim=-1)[:, None, None], ref.std(dim=-1)[:, None, None] + 1e-8
            # shifts=0: no random time shift, so the same clip always gives the same stems (resumes agree)
            stems = apply_model(self.model, (mix - mean) / std, shifts=0, split=True, overlap=0.25,
                                device=self.device, progress=False)  # [B, sources, C, S]
            stems = (stems * std[:, None] + mean[:, None]).cpu()
            vocals = stems[:, self.vocals]
            music = stems.sum(dim=1) - vocals
            for j, i in enumerate(indices):
                out[i] = (music[j].numpy().astype(np.float32), vocals[j].numpy().astype(np.float32))
        return out


def load_separator(name: str = DEFAULT_DEMUCS, repo: str | os.PathLike | None = None,
                   device: str | torch.device = "cpu") -> Separator:
    """Demucs model ``name`` (a pretrained name or signature; from ``repo`` when given) on ``device``."""
    try:
        from demucs.pretrained import get_model
    except ImportError:
        raise ModelError("demucs", "the demucs package is not installed: pip install 'demucs>=4.1' (on Linux aarch64, "
                                   "where its file-I/O dependency sphn has no wheel: pip install --no-deps 'demucs>=4.1' "
                                   "einops julius), or prepare with --separate none") from None
    if repo is not None and not Path(repo).is_dir():
        raise ModelError(repo, "--demucs-repo: not a folder")
    if repo is None:
        from ..hub import settle_offline_mode

        settle_offline_mode()  # Demucs asks the Hugging Face hub first: without a network, not 25 s of retries
    try:
        model = get_model(name, repo=Path(repo) if repo is not None else None)
    except SystemExit:  # demucs's fatal() exits on an unknown name
        raise ModelError(name, _missing(name, repo, "unknown Demucs model")) from None
    except Exception as err:  # no network and no cached weights, a bad checksum, a missing signature
        raise ModelError(name, _missing(name, repo, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")) from None
    return Separator(model, device, name)


def _missing(name: str, repo, why: str) -> str:
    """One line saying what to fetch, and where Demucs looks for it."""
    if repo is not None:
        return f"cannot load Demucs model {name!r} from {repo} ({why})"
    urls = _weight_urls(name)
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    fetch = (f"fetch {' and '.join(urls)} into {hub}" if urls else f"run `python -m demucs -n {name}` once online")
    return f"Demucs model {name!r} is not in the caches and cannot be downloaded ({why}): {fetch}"


def _weight_urls(name: str) -> list[str]:
    """The weight files of a named Demucs model, from the package's own list of remote files."""
    try:
        import yaml
        from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

        models = _parse_remote_files(REMOTE_ROOT / "files.txt")
        bag = REMOTE_ROOT / f"{name}.yaml"
        signatures = yaml.safe_load(bag.read_text())["models"] if bag.is_file() else [name]
        return [models[s] for s in signatures if s in models]
    except Exception:  # the package's layout changed: the generic hint is still right
        return []


def random_htdemucs(seed: int = 0, **overrides):
    """A randomly initialised HTDemucs of the released architecture (``overrides`` shrink it for tests)."""
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    return HTDemucs(sources=list(SOURCES), **{**HTDEMUCS_ARCHITECTURE, **overrides})


def save_demucs_package(model, folder: str | os.PathLike, signature: str) -> Path:
    """Write ``model`` as ``<folder>/<signature>.th``, the package Demucs's ``--repo`` loads.

    The package is what ``demucs.states.serialize_model`` writes, less its training arguments (which
    need omegaconf, and which loading ignores).
    """
    from demucs.states import get_state

    args, kwargs = model._init_args_kwargs
    package = {"klass": model.__class__, "args": args, "kwargs": kwargs, "state": get_state(model, None, False)}
    buffer = io.BytesIO()
    torch.save(package, buffer)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return write_atomic(Path(folder) / f"{signature}.th", buffer.getvalue())
