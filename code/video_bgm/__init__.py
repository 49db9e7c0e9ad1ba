"""video-to-music: background music for videos with a frozen MusicGen and a trained video encoder.

Stages (one module each): ``media`` (decode, sample frames, mux), ``frames`` (frozen frame
encoders), ``temporal`` (the trainable temporal transformer), ``musicgen`` (frozen MusicGen:
loss, guided sampling, EnCodec), ``pipeline`` (``VideoBGM``: all of them from a model folder).

    from video_bgm import VideoBGM, GenerationParams
"""

__version__ = "0.1.0"
__all__ = ["GenerationParams", "VideoBGM", "__version__"]

# Imported on first use: ``import video_bgm`` (a command's --help, --version) stays free of torch.
_LAZY = {"VideoBGM": "video_bgm.pipeline", "GenerationParams": "video_bgm.config"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'video_bgm' has no attribute {name!r}")
