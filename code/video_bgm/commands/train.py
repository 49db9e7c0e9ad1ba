"""Train a video encoder for the frozen MusicGen.

    python code/training/training.py --config training_conf.yml             # one GPU or the CPU
    accelerate launch code/training/training.py --config training_conf.yml  # several GPUs
    python training/training.py                                              # from code/, the thesis's form

Prepares the data once (feature cache), trains, validates, checkpoints, and writes a model
folder (<output_dir>/model) that generate.py and the app load. Run it again on the same
output_dir to resume where it stopped.
"""

from __future__ import annotations

from . import project_root
from ..cli import ArgumentParser, add_threads_argument, quiet_libraries, set_threads
from ..errors import UserInputError
from ..train.config import load_train_config

PROG = "training.py"

DEFAULT_CONFIG = project_root() / "training_conf.yml"


def main(argv=None, prog: str = PROG) -> int:
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help=f"YAML config (default: {DEFAULT_CONFIG.name} at the repo root)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.lr=3e-4 (repeatable)")
    add_threads_argument(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    try:
        config = load_train_config(args.config, args.set)
    except ValueError as err:
        raise UserInputError(f"{args.config}: {err}" if not str(err).startswith(str(args.config)) else str(err)) from None
    quiet_libraries()
    set_threads(args.threads)
    from ..train.loop import Trainer  # torch, transformers: after the arguments

    result = Trainer(config, show_progress=not args.quiet).run()
    print(f"model: {result.model_dir}")
    return 0
