#!/usr/bin/env python
"""Download pretrained models (see video_bgm/commands/download.py).

The same as `video-bgm download`; this script keeps the path the thesis's users know."""

from video_bgm.commands import script

if __name__ == "__main__":
    script("download")
