"""Download pretrained models: the thesis's checkpoints, any hub model, the thesis's example videos.

    python code/tools/download_models.py --list            # the thesis's checkpoints, with sizes
    python code/tools/download_models.py nature_small      # -> models/nature_small (our format)
    python code/tools/download_models.py owner/repo [--subfolder S] [--revision R]
    python code/tools/download_models.py --examples        # -> examples/n_1.mp4 ... s_8.mp4

Downloads go through huggingface_hub into the Hugging Face cache (resumable: run it again after an
interruption), together with the MusicGen (and CLIP) the model names, so that generate.py then runs
offline. A thesis checkpoint is also converted into models/NAME (safetensors, no pickle).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import hub
from . import project_root
from ..cli import ArgumentParser, quiet_libraries
from ..errors import UserInputError

PROG = "download_models.py"

REPO = project_root()


def parse_args(argv=None, prog: str = PROG):
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", help="checkpoint names (see --list) or hub repo ids")
    p.add_argument("--list", action="store_true", help="list the thesis's checkpoints with their download sizes")
    p.add_argument("--examples", action="store_true", help="fetch the thesis's example videos")
    p.add_argument("--subfolder", default=None, help="folder inside a hub repo")
    p.add_argument("--revision", default=None, help="hub branch, tag or commit (default: main)")
    p.add_argument("--models-dir", default=str(REPO / "models"), help="where converted checkpoints go (default: models/)")
    p.add_argument("--examples-dir", default=str(REPO / "examples"), help="where example videos go (default: examples/)")
    p.add_argument("--no-musicgen", action="store_true", help="do not fetch the MusicGen (and CLIP) a model names")
    return p.parse_args(argv)


def main(argv=None, prog: str = PROG) -> int:
    args = parse_args(argv, prog)
    quiet_libraries()
    if not (args.models or args.list or args.examples):
        raise UserInputError("name a model (see --list), or pass --list or --examples")
    if args.list:
        list_checkpoints(Path(args.models_dir))
    for name in args.models:
        fetch_model(name, args)
    if args.examples:
        fetch_examples(Path(args.examples_dir), args.revision)
    return 0


def list_checkpoints(models_dir: Path) -> None:
    from .. import thesis
    from ..model_folder import CONFIG_NAME  # torch: imported after the arguments, like the rest

    try:
        sizes, exact = hub.folder_sizes(hub.THESIS_REPO), True
    except Exception:  # offline, no network, any hub error: the published approximate sizes
        sizes, exact = {}, False
    print(f"Checkpoints of {hub.THESIS_REPO} (download sizes {'from the hub' if exact else 'approximate: the hub is out of reach'}):")
    print(f"{'name':<20} {'dataset':<8} {'MusicGen':<32} {'PEFT':<5} {'download':>10}  here")
    for entry in hub.CATALOG.values():
        size = sizes.get(entry.subfolder, entry.approx_bytes)
        where = "models/" + entry.name if (models_dir / entry.name / CONFIG_NAME).is_file() else (
            "HF cache" if hub.is_cached(hub.THESIS_REPO, filename=f"{entry.subfolder}/{thesis.WEIGHTS_FILE}") else "-")
        print(f"{entry.name:<20} {entry.dataset:<8} {entry.musicgen:<32} {'yes' if entry.peft else 'no':<5} "
              f"{('' if exact else '~') + _gigabytes(size):>10}  {where}")
    print("plus the MusicGen each names (fetched once into the Hugging Face cache). "
          "Weights: MusicGen's licence, CC-BY-NC 4.0 (non-commercial).")


def fetch_model(name: str, args) -> None:
    from .. import thesis

    ref = hub.parse_reference(name, args.subfolder, args.revision)
    if ref.path is not None:
        raise UserInputError(f"{name}: a local folder; nothing to download")
    folder = hub.download(ref)
    print(f"{ref}: in the Hugging Face cache at {folder}")
    musicgen = _frozen_models(folder)
    if not args.no_musicgen:
        for repo_id in musicgen:
            hub.prefetch(repo_id)
            print(f"{repo_id}: in the Hugging Face cache")
    if name in hub.CATALOG:
        out = Path(args.models_dir) / name
        thesis.convert(folder, out, source=f"{hub.THESIS_REPO}, {ref.subfolder} ({name})")
        print(f"converted to {out}; use it with:")
        print(f"  python code/inference/generate.py VIDEO --model {out} --out VIDEO_music.mp4")
    else:
        model = " ".join([name] + (["--subfolder", ref.subfolder] if ref.subfolder else [])
                         + (["--revision", ref.revision] if ref.revision else []))
        print(f"use it with:\n  python code/inference/generate.py VIDEO --model {model} --out VIDEO_music.mp4")


def _frozen_models(folder: Path) -> list[str]:
    """Hub ids of the frozen models a model folder names (MusicGen, and CLIP for our own models)."""
    from .. import thesis
    from ..model_folder import folder_kind, read_config

    if folder_kind(folder) == "thesis":
        refs = [thesis.read_training_config(folder)["musicgen_model_id"]]
    else:
        config = read_config(folder)
        refs = [config.musicgen] + ([config.frame_encoder.name] if config.frame_encoder.kind == "clip" else [])
    return [r for r in refs if hub.looks_like_repo_id(r) and not (folder / r).exists()]


def fetch_examples(out_dir: Path, revision: str | None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in hub.EXAMPLE_VIDEOS:
        cached = hub.fetch_file(hub.THESIS_REPO, f"videos/originals/{name}.mp4", revision,
                                fetch=f"{hub.FETCH_SCRIPT} --examples")
        shutil.copyfile(cached, out_dir / f"{name}.mp4")
    print(f"{len(hub.EXAMPLE_VIDEOS)} example videos in {out_dir}")


def _gigabytes(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"
