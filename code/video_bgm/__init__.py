"""video-to-music: background music for videos with a frozen MusicGen and a trained video encoder.

Stages (one module each): ``media`` (decode, sample frames, mux), ``frames`` (frozen frame
encoders), ``temporal`` (the trainable temporal transformer), ``musicgen`` (frozen MusicGen:
loss, guided sampling, EnCodec), ``pipeline`` (``VideoBGM``: all of them from a model folder).
"""

__version__ = "0.1.0"
