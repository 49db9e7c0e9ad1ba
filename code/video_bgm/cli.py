"""What every command-line tool shares: one-line errors, exit codes, Ctrl-C and SIGTERM, tqdm progress."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Callable

from .errors import UserInputError


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump), exit code 2, and ``--version``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.add_help:  # a top-level parser (subcommands' stubs have no options of their own)
            from . import __version__

            self.add_argument("--version", action="version", version=f"%(prog)s {__version__}")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """``--precision``, as generate.py and app.py offer it (the names ``MusicGen.from_pretrained`` takes)."""
    from .config import PRECISIONS

    parser.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                        help="MusicGen decoder precision (default fp32; bf16 halves its memory and is faster on "
                             "GPUs and CPUs with native bfloat16, see the README's Performance section)")


_OPTION_TYPES = {"float": float, "int": int, "str": str}


def add_generation_arguments(parser: argparse.ArgumentParser, names) -> None:
    """``--guidance-scale``, ``--top-k``, ... for the :class:`~video_bgm.config.GenerationParams` fields
    ``names``: their defaults and types come from the dataclass, their help from GENERATION_OPTION_HELP."""
    import dataclasses

    from .config import GENERATION_OPTION_HELP, GenerationParams

    fields = {f.name: f for f in dataclasses.fields(GenerationParams)}
    for name in names:
        field = fields[name]
        kind = _OPTION_TYPES[str(field.type).split(" | ")[0]]  # "float | None" -> float
        help_text = GENERATION_OPTION_HELP[name]
        if field.default is not None:
            help_text += f" (default {field.default:g})"
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=field.default, help=help_text)


def generation_params(args: argparse.Namespace, **more):
    """The GenerationParams that ``add_generation_arguments`` options (and ``more``) describe."""
    import dataclasses

    from .config import GenerationParams

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(GenerationParams) if hasattr(args, f.name)}
    return GenerationParams(**{**given, **more})


INTERRUPTED, TERMINATED = 130, 143  # the shell's 128 + SIGINT / SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt: the stack unwinds, so every ``finally`` that
    removes temporary files runs, and code that lets Ctrl-C through lets this through too."""


def _interrupt_line(prog: str, err: BaseException) -> tuple[str, int]:
    if isinstance(err, Terminated):
        return f"{prog}: terminated", TERMINATED
    return f"{prog}: interrupted", INTERRUPTED


def exit_cleanly_on_signals(prog: str) -> None:
    """From here on, Ctrl-C and SIGTERM end the program with one line and exit code 130 / 143, even
    while the libraries are still being imported (scripts call this before importing them)."""
    def terminate(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, terminate)
    previous_hook = sys.excepthook

    def hook(kind, value, traceback):
        if not issubclass(kind, KeyboardInterrupt):
            return previous_hook(kind, value, traceback)
        line, code = _interrupt_line(prog, value)
        print(line, file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(code)  # Python would otherwise re-raise SIGINT on itself (exit status -2, not 130)

    sys.excepthook = hook


def run(main: Callable[[], int | None], prog: str) -> None:
    """Run ``main``; a ``UserInputError`` becomes one line on stderr and exit code 1, Ctrl-C and
    SIGTERM (see :func:`exit_cleanly_on_signals`) one line and 130 / 143.

    Nothing heavy happens here: a command parses its arguments first (``--help`` answers at once),
    then imports torch and transformers and calls :func:`quiet_libraries`.
    """
    try:
        code = main()
    except UserInputError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as err:
        line, code = _interrupt_line(prog, err)
        print(line, file=sys.stderr)
        sys.exit(code)
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
            from tqdm import tqdm  # imported on first use: --help stays light

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
