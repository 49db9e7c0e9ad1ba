"""Writing output files safely: the one way every file this project writes reaches its place.

:func:`atomic_outputs` writes one or more files under temporary names in a hidden work folder
beside them and renames them into place together, or not at all; every OS-level failure (a
read-only place, a full disk, no permission, a name too long, the folder removed mid-run) is one
:class:`~video_bgm.errors.OutputError` naming the path and the cause, and the work folder is
always removed (on Ctrl-C and SIGTERM too; a SIGKILLed run's folder is removed by the next run).

:func:`check_outputs` is what can be known before any work starts: an output that is an input,
an output that would replace a file the user did not name, a folder in the way, a place where
nothing can be written.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .errors import OutputError

# Work folders are named .<target name>.partial-<pid>-<random>: the pid tells a later run
# whether the writer is still alive.
PARTIAL_MARK = ".partial-"
_PARTIAL = re.compile(r"^\..*\.partial-(\d+)-[^/]*$")
# Work folders of versions before this module: .<stem>.<8 random chars> holding music.wav and
# music.<ext> (see remove_stale_partials).
_LEGACY = re.compile(r"^\.(.+)\.[a-z0-9_]{8}$")
_LEGACY_FILES = {"music.wav", "music.mp4", "music.mov", "music.mkv", "music.webm"}
_swept: set[Path] = set()  # folders whose stale work folders this process removed already
_NAME_IN_WORK_FOLDER = 80  # characters of the target's name in its work folder's name (NAME_MAX is 255 bytes)


def cause(err: OSError) -> str:
    """An OS error's reason, without its paths: "No space left on device"."""
    return err.strerror or str(err).splitlines()[0] or type(err).__name__


@contextmanager
def atomic_outputs(*targets: str | os.PathLike) -> Iterator[list[Path]]:
    """Yield a temporary path for each target (same name, in a hidden work folder beside the first).

    When the block ends normally, all are renamed into place, the first target last (so its
    presence means the others are complete); if a rename fails, the files already renamed are
    removed and the ones they replaced put back. Targets must share a folder. An ``OSError`` in
    the block or the renames becomes an ``OutputError`` naming the target and the cause.
    """
    paths = [Path(os.path.abspath(t)) for t in targets]
    folder = paths[0].parent
    if any(p.parent != folder for p in paths):
        raise ValueError(f"outputs written together must share a folder: {', '.join(map(str, paths))}")
    if folder not in _swept:  # once per folder and process: a cache folder holds many thousand files
        remove_stale_partials(folder)
        _swept.add(folder)
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{paths[0].name[:_NAME_IN_WORK_FOLDER]}{PARTIAL_MARK}{os.getpid()}-",
                                     dir=folder))
    except OSError as err:
        raise OutputError(paths[0], _explain(err, folder)) from None
    temps = [work / p.name for p in paths]
    try:
        try:
            yield temps
            _rename_together(temps, paths, work)
        except OSError as err:
            raise OutputError(_target_of(err, temps, paths), _explain(err, folder)) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _rename_together(temps: list[Path], targets: list[Path], work: Path) -> None:
    """Move the existing targets aside, rename the new files in (first target last), or undo."""
    for target in targets:
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(target))
    aside = [(target, work / f"previous-{i}") for i, target in enumerate(targets) if os.path.lexists(target)]
    placed: list[Path] = []
    try:
        for target, backup in aside:
            os.replace(target, backup)
        for temp, target in reversed(list(zip(temps, targets))):
            os.replace(temp, target)
            placed.append(target)
    except BaseException:
        for target in placed:
            _remove_quietly(target)
        for target, backup in aside:
            if os.path.lexists(backup):
                try:
                    os.replace(backup, target)
                except OSError:
                    pass  # the folder itself is gone: nothing to put back into
        raise


def _target_of(err: OSError, temps: list[Path], targets: list[Path]) -> Path:
    """The target an error is about (errors name our temporary paths, which mean nothing to the user)."""
    for name in (err.filename, getattr(err, "filename2", None)):
        for temp, target in zip(temps, targets):
            if name is not None and os.fspath(name) in (str(temp), str(target)):
                return target
    return targets[0]


def _explain(err: OSError, folder: Path) -> str:
    if isinstance(err, FileNotFoundError) and not folder.is_dir():
        return f"cannot write: its folder {folder} no longer exists"
    return f"cannot write: {cause(err)}"


def _remove_quietly(path: Path) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def write_atomic(path: str | os.PathLike, data: bytes | str) -> Path:
    """``path`` with ``data`` (text is UTF-8), whole or not at all."""
    with atomic_outputs(path) as (tmp,):
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Checks before any work


def check_outputs(named: Iterable[str | os.PathLike] = (), derived: Iterable[str | os.PathLike] = (),
                  inputs: Iterable[str | os.PathLike] = (), overwrite: bool = True) -> None:
    """``OutputError`` unless every output can be written without harm.

    ``named``: outputs the user named (replacing them is what was asked); ``derived``: outputs
    made up from those (the WAV beside the video), replaced only with ``overwrite``; ``inputs``:
    files no output may be, even with ``overwrite`` (the same file by another path or a hard
    link counts). Each output's folder must exist and take a new file.
    """
    named, derived, inputs = [Path(p) for p in named], [Path(p) for p in derived], [Path(p) for p in inputs]
    for out in named + derived:
        check_name_length(out)  # first: other checks of such a path fail with ENAMETOOLONG
    for out in named + derived:
        for source in inputs:
            if is_same_file(out, source):
                same = "itself" if os.path.abspath(out) == os.path.abspath(source) else f"{source} (the same file)"
                raise OutputError(out, f"is the input {same}; choose another output name")
        if out.is_dir():
            raise OutputError(out, "is a folder; name the output file")
    for out in derived:
        if not overwrite and os.path.lexists(out):
            raise OutputError(out, "already exists (it would be replaced); --overwrite replaces it")
    for folder in dict.fromkeys(p.absolute().parent for p in named + derived):
        check_writable_folder(folder)


def is_same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """The same file or folder: one path, a symlink to it, or a hard link (same device and inode)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def check_writable_folder(folder: str | os.PathLike) -> None:
    """``OutputError`` unless ``folder`` exists and a file can be created in it (tried, not guessed:
    permission bits say nothing for root, read-only mounts or immutable folders)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputError(folder, "folder does not exist" if not folder.exists() else "is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".write-test{PARTIAL_MARK}{os.getpid()}-", dir=folder)
    except OSError as err:
        raise OutputError(folder, f"cannot write here: {cause(err)}") from None
    os.close(fd)
    os.remove(probe)


def check_name_length(path: str | os.PathLike) -> None:
    path = Path(path)
    try:
        limit = os.pathconf(path.absolute().parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        return
    if len(os.fsencode(path.name)) > limit:
        raise OutputError(path, f"file name too long ({len(os.fsencode(path.name))} bytes; this file system "
                                f"allows {limit})")


# ---------------------------------------------------------------------------------------------
# Leftovers of killed runs


def remove_stale_partials(folder: str | os.PathLike) -> list[Path]:
    """Remove the work folders in ``folder`` left by runs that were killed (their process is gone)."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if _is_stale(entry):
            shutil.rmtree(entry.path, ignore_errors=True) if entry.is_dir() else _remove_quietly(Path(entry.path))
            removed.append(Path(entry.path))
    return removed


def _is_stale(entry: os.DirEntry) -> bool:
    match = _PARTIAL.match(entry.name)
    if match:
        return not _process_alive(int(match[1]))
    # Before work folders carried a pid, write_outputs used .<stem>.<random>/music.{wav,<ext>}.
    if _LEGACY.match(entry.name) and entry.is_dir(follow_symlinks=False):
        try:
            names = set(os.listdir(entry.path))
        except OSError:
            return False
        return bool(names) and names <= _LEGACY_FILES
    return False


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but is not ours to signal
        return True
    return True
