"""Weights that the evaluation's reference networks fetch from a URL into torch's hub cache.

VGGish, PANNs, PaSST and ImageBind publish their weights as single files on plain URLs (not on the
Hugging Face Hub); their own packages fetch them into ``torch.hub.get_dir()/checkpoints``
(``~/.cache/torch/hub/checkpoints``, moved by ``TORCH_HOME``), and so do we, under the file's own
name, so a file a user already has from those packages is found. A missing file is downloaded once
(atomically: an interrupted download leaves nothing); without a network, or with ``HF_HUB_OFFLINE=1``,
it is one line naming the file and where to put it, at once rather than after a long time-out.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import torch

from .. import hub
from ..errors import ModelError
from ..refs import first_line


def checkpoint_dir() -> Path:
    """torch's hub cache of weight files (``TORCH_HOME``/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def filename_of(url: str) -> str:
    """The cached file's name: the URL's last part, unquoted (``Cnn14_mAP%3D0.431.pth`` -> ``Cnn14_mAP=0.431.pth``)."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])


def cached_path(url: str) -> Path:
    return checkpoint_dir() / filename_of(url)


def is_cached(url: str) -> bool:
    """Whether the file is already in the cache (metrics that need it are on by default only then)."""
    return cached_path(url).is_file()


def _offline_reason(url: str) -> str | None:
    """Why ``url`` cannot be fetched now (the process is offline, or its host does not answer), or None."""
    if hub.is_offline():
        return f"this process is offline: {hub.offline_reason()}"
    host = hub.unreachable_host(url)
    return None if host is None else f"{host} cannot be reached"


def fetch(url: str, what: str) -> Path:
    """The cached file of ``url`` (downloaded first if missing); ``what`` names the network in errors."""
    target = cached_path(url)
    if target.is_file():
        return target
    why = _offline_reason(url)
    if why is None:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            torch.hub.download_url_to_file(url, str(partial), progress=True)
            partial.replace(target)
            return target
        except Exception as err:  # HTTP errors, a dropped connection, a full disk
            why = f"download failed: {first_line(err)}"
        finally:
            partial.unlink(missing_ok=True)
    raise ModelError(what, f"{target.name} is not in {target.parent} and cannot be downloaded ({why}): "
                           f"fetch {url} into that folder")


def load_state_dict(url: str, what: str, key: str | None = None) -> dict:
    """The tensors of a cached (or downloaded) weight file; ``key`` picks a sub-dict (PANNs keep theirs in "model")."""
    path = fetch(url, what)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelError(what, f"{path}: not a readable weight file ({first_line(err)})") from None
    if key is not None:
        if not isinstance(state, dict) or key not in state:
            raise ModelError(what, f"{path}: no {key!r} entry in this weight file")
        state = state[key]
    return state


def load_into(model: torch.nn.Module, state: dict, what: str, source: str | Path) -> torch.nn.Module:
    """``model.load_state_dict(state)`` that fails in one line naming the file when weights do not fit."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ModelError(what, f"{source}: weights do not fit the network ({first_line(err)})") from None
    return model
