#!/usr/bin/env python
"""Train a video encoder (see video_bgm/commands/train.py); accelerate launch runs this file too.

The same as `video-bgm train`; this script keeps the path the thesis's users know."""

from video_bgm.commands import script

if __name__ == "__main__":
    script("train")
