"""What every command-line tool shares: one-line errors, exit codes, tqdm progress."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from tqdm import tqdm

from .errors import UserInputError


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """``--precision``, as generate.py and app.py offer it (the names ``MusicGen.from_pretrained`` takes)."""
    from .musicgen import PRECISIONS

    parser.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                        help="MusicGen decoder precision (default fp32; bf16 halves its memory and is faster on "
                             "GPUs and CPUs with native bfloat16, see the README's Performance section)")


def run(main: Callable[[], int | None], prog: str) -> None:
    """Run ``main``; a ``UserInputError`` becomes one line on stderr and exit code 1.

    Nothing heavy happens here: a command parses its arguments first (``--help`` answers at once),
    then imports torch and transformers and calls :func:`quiet_libraries`.
    """
    try:
        code = main()
    except UserInputError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def quiet_libraries() -> None:
    """Called by each command once its arguments are parsed (it imports transformers): transformers warns about MusicGen's out-of-vocabulary pad id on every load (harmless) and
    draws a bar for every weight file it reads; our own bars show what matters."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


class StageProgress:
    """Adapts the pipeline's ``progress(stage, done, total)`` to one tqdm bar per stage."""

    def __init__(self, disable: bool = False):
        self.disable = disable
        self.bar = None
        self.stage = None
        self.window = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage == "window":  # long music: shown beside the steps bar, which runs across windows
            self.window = f"window {done}/{total}" if total > 1 else ""
            if self.bar is not None and self.stage == "generating":
                self.bar.set_postfix_str(self.window)
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            unit = "step" if stage == "generating" else "stage"
            self.bar = tqdm(total=total, desc=f"{stage:>10}", unit=unit, disable=self.disable,
                            file=sys.stderr, leave=True, dynamic_ncols=True)
            if stage == "generating" and self.window:
                self.bar.set_postfix_str(self.window)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
