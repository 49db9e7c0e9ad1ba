"""The package's own surface: what ``import video_bgm`` gives and what it costs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, REPO


def test_the_top_level_names_and_a_light_import():
    script = ("import sys, video_bgm; light = 'torch' not in sys.modules; "
              "from video_bgm import VideoBGM, GenerationParams; "
              "print(light, VideoBGM.__module__, GenerationParams.__module__, video_bgm.__version__)")
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "video_bgm.pipeline", "video_bgm.config", "0.1.0"]


# Each command parses its arguments before it imports torch, transformers or PyAV.
COMMANDS = ["code/inference/generate.py", "code/inference/gradio_app/app.py", "code/training/training.py",
            "code/evaluation/evaluate.py", "code/tools/download_models.py",
            "code/tools/convert_thesis_checkpoint.py", "code/tools/prepare_dataset.py", "code/tools/make_tiny_models.py",
            "code/tools/make_example_clip.py", "code/tools/make_synthetic_dataset.py"]
HELP_CHECK = """
import runpy, sys, time
sys.argv = [{script!r}, "--help"]
start = time.perf_counter()
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as done:
    assert done.code in (0, None), done.code
heavy = sorted(m for m in ("torch", "transformers", "av", "gradio") if m in sys.modules)
print(",".join(heavy) or "-", round(time.perf_counter() - start, 2), file=sys.stderr)
"""


@pytest.mark.parametrize("script", COMMANDS)
def test_help_answers_before_the_heavy_imports(script):
    result = subprocess.run([PYTHON, "-c", HELP_CHECK.format(script=str(REPO / script))], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout
    heavy, seconds = result.stderr.split()
    assert heavy == "-", f"{script} --help imported {heavy}"
    assert float(seconds) < 1.0, f"{script} --help took {seconds} s"


def _console_script() -> str:
    from importlib.metadata import entry_points

    (entry,) = entry_points(group="console_scripts", name="video-bgm")
    assert entry.value == "video_bgm.commands:main"
    return str(Path(PYTHON).parent / "video-bgm")  # where pip put it, beside this interpreter


def test_the_console_script_runs_each_tool_under_its_own_name():
    script = _console_script()
    version = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == "video-bgm 0.1.0"
    listing = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    for command in ("generate", "app", "train", "evaluate", "download", "convert", "prepare"):
        assert f"    {command}" in listing.stdout
    tool = subprocess.run([script, "generate", "--help"], capture_output=True, text=True, timeout=60)
    assert tool.returncode == 0 and tool.stdout.startswith("usage: video-bgm generate [-h] [--version]")
    bad = subprocess.run([script, "generate", "missing.mp4", "--out", "x.mp4"], capture_output=True, text=True,
                         timeout=120)
    assert (bad.returncode, bad.stderr.strip()) == (1, "video-bgm generate: error: missing.mp4: file not found")
    unknown = subprocess.run([script, "compose"], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "invalid choice: 'compose'" in unknown.stderr


@pytest.mark.parametrize("script", ["code/inference/generate.py", "code/tools/download_models.py"])
def test_each_script_says_its_version(script):
    result = subprocess.run([PYTHON, script, "--version"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"{Path(script).name} 0.1.0"


COMPUTING = ["code/inference/generate.py", "code/inference/gradio_app/app.py", "code/training/training.py",
             "code/evaluation/evaluate.py", "code/tools/prepare_dataset.py"]


@pytest.mark.parametrize("script", COMPUTING)
def test_every_computing_command_takes_a_thread_count(script):
    result = subprocess.run([PYTHON, script, "--threads", "0"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "argument --threads: must be >= 1, got 0" in result.stderr, result.stderr
    assert "--threads N" in subprocess.run([PYTHON, script, "--help"], cwd=REPO, capture_output=True, text=True,
                                           timeout=60).stdout
