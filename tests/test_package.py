"""The package's own surface: what ``import video_bgm`` gives and what it costs."""

from __future__ import annotations

import subprocess

from conftest import PYTHON


def test_the_top_level_names_and_a_light_import():
    script = ("import sys, video_bgm; light = 'torch' not in sys.modules; "
              "from video_bgm import VideoBGM, GenerationParams; "
              "print(light, VideoBGM.__module__, GenerationParams.__module__, video_bgm.__version__)")
    result = subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "video_bgm.pipeline", "video_bgm.config", "0.1.0"]
