"""Training checkpoints: written atomically, the last K kept plus the best, exact resume.

    <output_dir>/checkpoints/step-000500/   temporal.safetensors  optimizer.pt  scheduler.pt  state.json
    <output_dir>/checkpoints/best/          the same, for the lowest validation loss so far

A checkpoint is written into a hidden temporary folder and renamed into place, so a crash or
a full disk never leaves a half-written one; older checkpoints are removed only after the new
one is complete.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from ..errors import UserInputError

STATE_FILES = ("temporal.safetensors", "optimizer.pt", "scheduler.pt", "state.json")


class CheckpointError(UserInputError):
    """Writing a checkpoint failed (e.g. a full disk); the previous checkpoints are intact."""


def save_checkpoint(folder: Path, name: str, temporal: torch.nn.Module, optimizer, scheduler, state: dict) -> Path:
    """Write checkpoint ``folder/name`` atomically and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder))
    final = folder / name
    try:
        weights = {k: v.detach().cpu().contiguous() for k, v in temporal.state_dict().items()}
        (tmp / "temporal.safetensors").write_bytes(save(weights))  # Python's write: OSError on a full disk
        _torch_save(optimizer.state_dict(), tmp / "optimizer.pt")
        _torch_save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")
        _fsync_folder(tmp)
        if final.exists():  # replacing "best": move the old one aside first, delete it last
            old = folder / f".{name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
        raise CheckpointError(f"{final}: cannot write checkpoint: {reason}; earlier checkpoints are intact") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _torch_save(obj, path: Path) -> None:
    """torch.save into memory, written by Python: a full disk raises OSError(ENOSPC), where torch's
    own file writer raises a RuntimeError that names neither the file nor the cause."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    path.write_bytes(buffer.getbuffer())


def _fsync_folder(folder: Path) -> None:
    """Flush the files to disk before the rename makes the checkpoint visible."""
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def step_checkpoints(folder: Path) -> list[Path]:
    """Complete step checkpoints, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("step-*") if p.is_dir() and all((p / f).is_file() for f in STATE_FILES)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def prune(folder: Path, keep_last: int) -> None:
    for old in step_checkpoints(folder)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in folder.glob(".*"):  # temporary folders of a run killed mid-write
        shutil.rmtree(stale, ignore_errors=True)


def load_checkpoint(path: Path, temporal: torch.nn.Module, optimizer=None, scheduler=None) -> dict:
    """Restore weights (and optimizer and scheduler when given); returns the trainer state.

    No random state is stored: the loop derives it from the seed and its position.
    """
    temporal.load_state_dict(load_file(path / "temporal.safetensors"))
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    if scheduler is not None:
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    return json.loads((path / "state.json").read_text())
