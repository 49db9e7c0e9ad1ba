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


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads``: torch's CPU threads, for every command that computes."""
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="CPU threads for torch (default: torch's choice, one per core); on a machine that "
                             "other jobs load, fewer threads than cores can be several times faster, with the "
                             "same results")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (None: leave torch's default)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls, help_texts: dict, names=None) -> None:
    """One option per field of dataclass ``cls`` (or of the fields ``names``): ``--clip-seconds`` for
    ``clip_seconds``, with the field's default and type (a bool is a flag, a Literal a choice) and the
    help from ``help_texts``, the default appended."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in names if names is not None else fields:
        field, hint = fields[name], hints[name]
        flag = "--" + name.replace("_", "-")
        if hint is bool:
            parser.add_argument(flag, action="store_true", help=help_texts[name])
            continue
        choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
        kind = next((t for t in (typing.get_args(hint) or (hint,)) if t is not type(None)), str)  # float | None -> float
        default = "" if field.default is None else f" (default {field.default:g})" if isinstance(
            field.default, float) else f" (default {field.default})"
        parser.add_argument(flag, type=None if choices else kind, choices=choices, default=field.default,
                            help=help_texts[name] + default)


def dataclass_from_args(cls, args: argparse.Namespace, **more):
    """The ``cls`` that ``add_dataclass_arguments`` options (and ``more``) describe: every field the
    parsed ``args`` have."""
    import dataclasses

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**given, **more})


def add_generation_arguments(parser: argparse.ArgumentParser, names) -> None:
    """``--guidance-scale``, ``--top-k``, ... for the :class:`~video_bgm.config.GenerationParams` fields
    ``names``: their defaults and types come from the dataclass, their help from GENERATION_OPTION_HELP."""
    from .config import GENERATION_OPTION_HELP, GenerationParams

    add_dataclass_arguments(parser, GenerationParams, GENERATION_OPTION_HELP, names)


def generation_params(args: argparse.Namespace, **more):
    """The GenerationParams that ``add_generation_arguments`` options (and ``more``) describe."""
    from .config import GenerationParams

    return dataclass_from_args(GenerationParams, args, **more)


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
