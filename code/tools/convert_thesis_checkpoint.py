#!/usr/bin/env python
"""Convert a thesis checkpoint folder (see video_bgm/commands/convert.py).

The same as `video-bgm convert`; this script keeps the path the thesis's users know."""

from video_bgm.commands import script

if __name__ == "__main__":
    script("convert")
