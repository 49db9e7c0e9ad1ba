"""Model references: a hub repo id, or a path (absolute, or relative to the model folder naming it)."""

from __future__ import annotations

from pathlib import Path

from .errors import ModelError


def resolve_reference(ref: str, base_dir: Path | None, what: str = "model") -> str:
    """A hub id stays as is; a path becomes absolute (relative ones are taken from ``base_dir``).

    A path that does not exist is an error naming ``what`` referred to it, rather than a
    confusing "invalid repo id" from the hub client later.
    """
    looks_like_path = ref.startswith((".", "/", "~")) or ref.count("/") > 1
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    candidate = (base / Path(ref).expanduser()).resolve()
    if candidate.exists():
        return str(candidate)
    if looks_like_path:
        raise ModelError(candidate, f"no such folder ({what})")
    return ref


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, for one-line user errors."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def load_pretrained(model_class, ref: str, what: str, revision: str | None = None, **kwargs):
    """``model_class.from_pretrained`` that fails loudly: weights missing from the checkpoint or
    of the wrong shape are an error here, not a silently re-initialised (random) layer."""
    if not Path(ref).expanduser().exists():
        from . import hub

        hub.settle_offline_mode()  # a hub id: no retries with back-off when there is no network
        kwargs = {**hub.current_access().kwargs(), **kwargs}
    try:
        model, info = model_class.from_pretrained(ref, revision=revision, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as err:
        reason = first_line(err)
        if "ignore_mismatched_sizes" in reason:  # transformers' wording for weights of other shapes
            reason = "some weights have other shapes than its config says"
        raise ModelError(ref, f"cannot load {what}: {reason}") from None
    missing, mismatched = sorted(info["missing_keys"]), sorted(info["mismatched_keys"])
    if missing or mismatched:
        example = (missing or [m[0] for m in mismatched])[0]
        raise ModelError(ref, f"cannot load {what}: {len(missing)} weights missing and {len(mismatched)} "
                              f"of other shapes than its config says (e.g. {example})")
    return model
