"""The package's own surface: what ``import video_bgm`` gives and what it costs."""

from __future__ import annotations

import subprocess

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
COMMANDS = ["code/training/training.py", "code/evaluation/evaluate.py", "code/tools/download_models.py",
            "code/tools/convert_thesis_checkpoint.py", "code/tools/make_tiny_models.py",
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
