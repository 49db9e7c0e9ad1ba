"""Evaluation of video-to-music models: audio quality (FAD), diversity and video-music correspondence.

``runner.evaluate(EvalOptions(...))`` generates (or reads) music for reference clips, scores it and
writes ``metrics.json``, ``index.html``, ``report.md`` and plots; ``code/evaluation/evaluate.py``
is its command line. The metric modules (``fad``, ``diversity``, ``correspondence``,
``embeddings``) are usable on their own.
"""

DEFAULT_CLAP = "laion/clap-htsat-unfused"  # the CLAP model FAD and the text score use unless told
CLAP_MUSIC = "laion/larger_clap_music"  # LAION's music CLAP (HTSAT-base), transformers' port: --clap-music
