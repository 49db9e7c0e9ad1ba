#!/usr/bin/env python
"""Build a training set from raw footage (see video_bgm/commands/prepare.py).

The same as `video-bgm prepare`; this script keeps the layout of the other tools."""

from video_bgm.commands import script

if __name__ == "__main__":
    script("prepare")
