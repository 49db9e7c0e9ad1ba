"""Model references: a hub repo id, or a path (absolute, or relative to the model folder naming it)."""

from __future__ import annotations

from pathlib import Path


def resolve_reference(ref: str, base_dir: Path | None) -> str:
    """A hub id stays as is; a path becomes absolute (relative ones are taken from ``base_dir``)."""
    if base_dir is not None and (ref.startswith((".", "/", "~")) or (Path(base_dir) / ref).exists()):
        return str((Path(base_dir) / Path(ref).expanduser()).resolve())
    return ref


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, for one-line user errors."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
