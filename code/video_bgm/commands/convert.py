"""Convert a thesis checkpoint folder into our model format.

    python code/tools/convert_thesis_checkpoint.py THESIS_FOLDER OUT_FOLDER [--musicgen REF]

THESIS_FOLDER holds configuration.yml and lm_final.pt (and musicgen_peft_final/ for the PEFT
models); OUT_FOLDER gets config.json, model.safetensors (ResNet-50 + temporal transformer),
musicgen_adapter/ (the LoRA adapter in transformers' naming) and a model card. lm_final.pt is
read as tensors only (never unpickling code), and no pickle file is needed afterwards.
"""

from __future__ import annotations

from pathlib import Path

from ..cli import ArgumentParser, quiet_libraries
from ..errors import UserInputError
from ..refs import resolve_reference

PROG = "convert_thesis_checkpoint.py"


def main(argv=None, prog: str = PROG) -> int:
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("folder", help="thesis checkpoint folder (configuration.yml + lm_final.pt)")
    p.add_argument("out", help="output model folder (created)")
    p.add_argument("--musicgen", default=None, help="name this MusicGen (hub id or folder) instead of the one in configuration.yml")
    args = p.parse_args(argv)
    quiet_libraries()
    from .. import thesis  # torch: after the arguments
    from ..model_folder import folder_kind

    folder = Path(args.folder)
    if folder_kind(folder) != "thesis":
        raise UserInputError(f"{folder}: not a thesis checkpoint folder ({thesis.CONFIG_FILE} and {thesis.WEIGHTS_FILE})")
    musicgen = resolve_reference(args.musicgen, None, "--musicgen") if args.musicgen else None
    out = thesis.convert(folder, Path(args.out), musicgen=musicgen)
    print(out)
    return 0
