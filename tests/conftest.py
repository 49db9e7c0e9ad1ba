"""Shared fixtures: tiny random models and small media, all generated at run time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> dict[str, Path]:
    """The bundle make_tiny_models.py writes: {"video-encoder": path, "video-encoder-stereo": path}."""
    from video_bgm.random_models import write_tiny_bundle

    return write_tiny_bundle(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def tiny_model(tiny_bundle):
    from video_bgm.pipeline import VideoBGM

    return VideoBGM.from_pretrained(tiny_bundle["video-encoder"], device="cpu")


@pytest.fixture(scope="session")
def tiny_clap(tmp_path_factory) -> Path:
    """A tiny random CLAP folder (model, 48 kHz feature extractor with 2 s windows, tokenizer)."""
    from video_bgm.random_models import save_clap

    return save_clap(tmp_path_factory.mktemp("clap") / "clap")


@pytest.fixture(scope="session")
def clip_3s(tmp_path_factory) -> Path:
    """A 3 s 64x48 H.264 clip at 10 fps with a stereo AAC track."""
    from video_bgm.synthetic import write_test_video

    path = tmp_path_factory.mktemp("media") / "clip_3s.mp4"
    return Path(write_test_video(path, duration=3.0, fps=10, size=(64, 48)))


def load_script(relative: str):
    """The command behind one of the repo's scripts (each ``code/...`` script is a shim over a module of
    ``video_bgm.commands``): its ``main(argv)`` is the command line."""
    import importlib

    from video_bgm.commands import TOOLS

    module = next(module for module, script, _ in TOOLS.values() if script == relative)
    return importlib.import_module(f"video_bgm.commands.{module}")


def call_main(module, prog: str, *argv) -> tuple[int, str, str]:
    """Run a script's main in-process as its command line does: (exit code, stdout, stderr)."""
    import contextlib
    import io

    from video_bgm.cli import run

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        run(lambda: module.main([str(a) for a in argv]), prog)
    return exit_info.value.code, out.getvalue(), err.getvalue()


def streams(path) -> list[tuple[str, str]]:
    """(type, codec) of each stream of a media file."""
    import av

    with av.open(str(path)) as container:
        return [(s.type, s.codec_context.name) for s in container.streams]


def video_packets(path) -> list[bytes]:
    """The video stream's packets: equal lists prove a stream copy (no re-encoding)."""
    import av

    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def run_script(script: str, *args, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run one of the repo's scripts the way a user does, from ``cwd`` (default: the repo)."""
    return subprocess.run([PYTHON, str(REPO / script) if cwd is None else script, *map(str, args)],
                          cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def full_filesystem(tmp_path):
    """``make(size_bytes)`` -> a folder on a real tmpfs of that size (unmounted after the test).

    Mounting needs root (CI runs as root); elsewhere the tests that need it skip, saying why.
    """
    mounted = []

    def make(size: int) -> Path:
        folder = tmp_path / f"small-fs-{len(mounted)}"
        folder.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip() or 'mount failed'}")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def require_installed(what: str, present: bool, install: str, flag: str) -> None:
    """Skip, naming the install command, when something a test needs is missing; ``flag`` set (CI) makes it a failure."""
    if present:
        return
    message = f"this test needs {what}: {install}"
    if os.environ.get(flag):
        pytest.fail(message)
    pytest.skip(f"{message} ({flag}=1 makes this a failure)")


@pytest.fixture(scope="session")
def rendered_music(tmp_path_factory):
    """render(name, bpm) -> float32 [S] at 32 kHz: a music21 corpus score played by fluidsynth (cached)."""
    import shutil

    from video_bgm import synthetic

    require_installed("fluidsynth and the GM soundfont",
                       shutil.which("fluidsynth") is not None and synthetic.SOUNDFONT.is_file(),
                       "apt-get install -y fluidsynth fluid-soundfont-gm", "REQUIRE_FLUIDSYNTH")
    folder, cache = tmp_path_factory.mktemp("rendered"), {}

    def render(name: str, bpm: float):
        if (name, bpm) not in cache:
            cache[name, bpm] = synthetic.render_score(name, bpm, 32000, folder)
        return cache[name, bpm]

    return render


@pytest.fixture(scope="module")
def clips12(tmp_path_factory) -> Path:
    """12 paired clips whose colour picks the pitch of their tone (the training tests' data set)."""
    from video_bgm.synthetic import write_paired_clips

    return write_paired_clips(tmp_path_factory.mktemp("paired") / "videos", 12)


REFERENCES = "pip install --no-deps -r requirements-reference.txt"


def require_reference(what: str, present: bool) -> None:
    """A reference implementation (requirements-reference.txt) that a metric is checked against;
    REQUIRE_REFERENCES=1 (CI) makes its absence a failure."""
    require_installed(what, present, REFERENCES, "REQUIRE_REFERENCES")
