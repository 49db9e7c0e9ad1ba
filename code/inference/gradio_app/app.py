#!/usr/bin/env python
"""The browser app (see video_bgm/commands/app.py).

The same as `video-bgm app`; this script keeps the path the thesis's users know."""

from video_bgm.commands import script

if __name__ == "__main__":
    script("app")
