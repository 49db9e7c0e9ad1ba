"""The command-line tools. Each module has a ``main(argv=None, prog=...)``; two ways to call them:

    video-bgm generate clip.mp4 --out clip_music.mp4     # the console script (pip install)
    python code/inference/generate.py clip.mp4 ...        # the thesis's layout: a shim per tool

Nothing heavy is imported here or at the top of a tool's module: each parses its arguments first,
so ``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

# subcommand -> (module, the script that the source checkout keeps as a shim, one line of help)
TOOLS = {
    "generate": ("generate", "code/inference/generate.py", "music for a video, or a folder of videos"),
    "app": ("app", "code/inference/gradio_app/app.py", "the browser app"),
    "train": ("train", "code/training/training.py", "train a video encoder"),
    "evaluate": ("evaluate", "code/evaluation/evaluate.py", "score models: quality, diversity, correspondence"),
    "download": ("download", "code/tools/download_models.py", "fetch pretrained models and the example videos"),
    "convert": ("convert", "code/tools/convert_thesis_checkpoint.py", "convert a thesis checkpoint folder"),
    "prepare": ("prepare", "code/tools/prepare_dataset.py", "build a training set from a folder of raw videos"),
}
CONSOLE_SCRIPT = "video-bgm"


def project_root() -> Path:
    """The source checkout the package runs from (models/, examples/ and training_conf.yml live there);
    the working directory when the package was installed from a wheel."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "training_conf.yml").is_file() else Path.cwd()


def script(name: str) -> None:
    """Run tool ``name`` as its shim script ``code/...``, under the script's own name."""
    prog = Path(TOOLS[name][1]).name
    _run(name, sys.argv[1:], prog)


def main(argv=None) -> None:
    """``video-bgm COMMAND [options]``: the console script."""
    from ..cli import ArgumentParser

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = ArgumentParser(prog=CONSOLE_SCRIPT, description="Background music for videos.",
                            epilog=f"'{CONSOLE_SCRIPT} COMMAND --help' shows a command's options.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command, (_, _, summary) in TOOLS.items():
        commands.add_parser(command, help=summary, add_help=False)
    # Only the subcommand is parsed here; everything after it belongs to the tool's own parser.
    index = next((i for i, arg in enumerate(argv) if arg in TOOLS), None)
    if index is None:
        parser.parse_args(argv)  # --help, --version, or a one-line error naming the commands
        return
    parser.parse_args(argv[:index + 1])
    _run(argv[index], argv[index + 1:], f"{CONSOLE_SCRIPT} {argv[index]}")


def _run(name: str, argv: list[str], prog: str) -> None:
    from ..cli import exit_cleanly_on_signals, run

    exit_cleanly_on_signals(prog)
    module = importlib.import_module(f"{__name__}.{TOOLS[name][0]}")
    run(lambda: module.main(argv, prog=prog), prog)
