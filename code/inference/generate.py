#!/usr/bin/env python
"""Write background music for a video (see video_bgm/commands/generate.py).

The same as `video-bgm generate`; this script keeps the path the thesis's users know."""

from video_bgm.commands import script

if __name__ == "__main__":
    script("generate")
