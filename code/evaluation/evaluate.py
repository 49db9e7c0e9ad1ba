#!/usr/bin/env python
"""Evaluate video-to-music models (see video_bgm/commands/evaluate.py).

The same as `video-bgm evaluate`; this script keeps the path the thesis's users know."""

from video_bgm.commands import script

if __name__ == "__main__":
    script("evaluate")
