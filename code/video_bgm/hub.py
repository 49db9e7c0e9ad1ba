"""Model references and the Hugging Face Hub: what a ``--model`` names, downloads, uploads, offline errors.

A reference is one of
- a local folder (our format, or a thesis folder: ``configuration.yml`` + ``lm_final.pt``);
- a hub repo id ``owner/name``, optionally with a ``subfolder`` inside the repo and a ``revision``
  (branch, tag or commit);
- a name from :data:`CATALOG` (``nature_small``, ``symmv_large_peft``, ...): the thesis's published
  checkpoints in :data:`THESIS_REPO`.

Downloads go through ``huggingface_hub.snapshot_download`` into the Hugging Face cache (resumable,
with progress bars, only the subfolder's files). Without the hub (``HF_HUB_OFFLINE=1`` or no
network) a model that is not cached is one line naming it and the command that fetches it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .refs import first_line

THESIS_REPO = "schnik/video-background-music-generation"
DEFAULT_MODEL = "nature_small"  # what generate.py uses without --model
FETCH_SCRIPT = "python code/tools/download_models.py"
EXAMPLE_VIDEOS = tuple(f"{d}_{i}" for d in "ns" for i in range(1, 9))  # videos/originals/{name}.mp4

_GB = 10**9
# Published sizes (thesis-checkpoints.md): lm_final.pt is ~1.35 GB when it holds the video model
# alone; the large ones are ~14.7 GB. Medium's is estimated from its architecture (~1.35 GB).
# The PEFT adapters add r=16 LoRA on 4 Linear layers of each of the decoder's layers.
_WEIGHT_BYTES = {"small": 1.35 * _GB, "medium": 1.35 * _GB, "large": 14.7 * _GB}
_ADAPTER_BYTES = {"small": 22e6, "medium": 66e6, "large": 88e6}


@dataclass(frozen=True)
class CatalogEntry:
    """One of the thesis's published checkpoints."""

    dataset: str   # "nature" or "symmv"
    size: str      # MusicGen size: "small", "medium", "large"
    peft: bool     # with a LoRA adapter on MusicGen's decoder

    @property
    def name(self) -> str:
        return f"{self.dataset}_{self.size}" + ("_peft" if self.peft else "")

    @property
    def subfolder(self) -> str:
        return f"models_{'peft' if self.peft else 'frozen_decoder'}/{self.dataset}_{self.size}"

    @property
    def musicgen(self) -> str:
        return f"facebook/musicgen-stereo-{self.size}"

    @property
    def approx_bytes(self) -> float:
        return _WEIGHT_BYTES[self.size] + (_ADAPTER_BYTES[self.size] if self.peft else 0)


CATALOG: dict[str, CatalogEntry] = {
    e.name: e for e in (CatalogEntry(d, s, p) for p in (False, True) for d in ("nature", "symmv")
                        for s in ("small", "medium", "large"))
}


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: ``path`` for a local folder, else ``repo_id`` (+ ``subfolder``, ``revision``)."""

    path: Path | None = None
    repo_id: str | None = None
    subfolder: str | None = None
    revision: str | None = None

    def __str__(self) -> str:
        if self.path is not None:
            return str(self.path)
        text = self.repo_id + (f"/{self.subfolder}" if self.subfolder else "")
        return text + (f"@{self.revision}" if self.revision else "")

    @property
    def catalog_name(self) -> str | None:
        if self.repo_id == THESIS_REPO:
            for entry in CATALOG.values():
                if entry.subfolder == self.subfolder:
                    return entry.name
        return None

    def fetch_command(self) -> str:
        """The command that downloads this model (run with internet)."""
        if self.catalog_name and not self.revision:
            return f"{FETCH_SCRIPT} {self.catalog_name}"
        return " ".join([FETCH_SCRIPT, self.repo_id]
                        + (["--subfolder", self.subfolder] if self.subfolder else [])
                        + (["--revision", self.revision] if self.revision else []))


def looks_like_repo_id(ref: str) -> bool:
    return ref.count("/") == 1 and not ref.startswith((".", "/", "~")) and all(ref.split("/"))


def parse_reference(ref: str | os.PathLike, subfolder: str | None = None, revision: str | None = None) -> ModelRef:
    """Tell a local folder from a hub repo id or a catalog name (a local folder wins)."""
    text = os.fspath(ref)
    subfolder = subfolder.strip("/") if subfolder else None
    path = Path(text).expanduser()
    if path.is_dir():
        if revision:
            raise ModelError(path, "--revision applies to hub repos, not to local folders")
        return ModelRef(path=(path / subfolder if subfolder else path).resolve())
    if text in CATALOG:
        if subfolder:
            raise ModelError(text, "a checkpoint name already picks its subfolder; drop --subfolder")
        return ModelRef(repo_id=THESIS_REPO, subfolder=CATALOG[text].subfolder, revision=revision)
    if looks_like_repo_id(text) and not path.exists():
        return ModelRef(repo_id=text, subfolder=subfolder, revision=revision)
    raise ModelError(text, "no such model folder, and not a hub repo id (owner/name) nor a checkpoint name "
                           f"({', '.join(CATALOG)})")


_PROBE_TIMEOUT_S = 3.0
_unreachable: str | None = None  # why the hub is out of reach, once a probe found it so
_reachable = False  # a probe reached it: not asked again in this process


@dataclass(frozen=True)
class HubAccess:
    """How this load talks to the hub, under the Hugging Face names ``from_pretrained`` takes:
    ``token`` (None: the logged-in one), ``local_files_only`` (the cache only, as offline)."""

    token: str | bool | None = None
    local_files_only: bool = False

    def kwargs(self) -> dict:
        """What huggingface_hub's and transformers' loaders take (only what was set)."""
        return {k: v for k, v in (("token", self.token), ("local_files_only", self.local_files_only)) if v}


_access: contextvars.ContextVar[HubAccess] = contextvars.ContextVar("hub_access", default=HubAccess())


@contextlib.contextmanager
def access(token: str | bool | None = None, local_files_only: bool = False):
    """Every hub call inside the ``with`` (downloads, transformers' loads) uses this token and cache rule."""
    reset = _access.set(HubAccess(token, local_files_only))
    try:
        yield
    finally:
        _access.reset(reset)


def current_access() -> HubAccess:
    return _access.get()


def is_offline() -> bool:
    """Whether the hub is out of reach: ``HF_HUB_OFFLINE=1``, ``local_files_only``, or a probe found it unreachable."""
    from huggingface_hub import constants

    return current_access().local_files_only or constants.is_offline_mode()


def offline_reason() -> str | None:
    """Why the hub is out of reach (for error messages), or None while it may be reached."""
    if not is_offline():
        return None
    if current_access().local_files_only:
        return "local_files_only=True keeps the hub out of reach"
    return _unreachable or "HF_HUB_OFFLINE=1 keeps the hub out of reach"


def settle_offline_mode() -> bool:
    """True when the hub is out of reach; probes it once per process before the first hub call.

    Without a network, huggingface_hub retries each request five times with back-off (about 25 s
    of warnings) before it gives up. One TCP connection to the hub's host (or the proxy) tells at
    once; when it fails, this process switches to offline mode (huggingface_hub and transformers
    alike), so what is cached loads at once and what is not is one line at once.
    """
    global _unreachable, _reachable
    if is_offline():
        return True
    if _reachable:
        return False
    from huggingface_hub import constants

    host = unreachable_host(constants.ENDPOINT)
    if host is None:
        _reachable = True
        return False
    _unreachable = f"the hub ({host}) cannot be reached"
    constants.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"  # child processes too
    return True


def unreachable_host(url: str) -> str | None:
    """The host that one TCP connection for ``url`` cannot reach (its proxy, where one is set, as urllib
    would go), or None when it answers: a probe that takes seconds where a download's retries take long."""
    import socket
    import urllib.parse
    import urllib.request

    scheme = urllib.parse.urlsplit(url).scheme
    endpoint = urllib.parse.urlsplit(urllib.request.getproxies().get(scheme) or url)
    host, port = endpoint.hostname, endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S).close()
        return None
    except OSError:
        return host


def download(ref: ModelRef, allow_patterns: list[str] | None = None, ignore_patterns: list[str] | None = None) -> Path:
    """The folder of a hub model in the Hugging Face cache, downloaded (only its subfolder) if needed."""
    from huggingface_hub import snapshot_download

    if ref.subfolder:
        allow_patterns = [f"{ref.subfolder}/{p}" for p in (allow_patterns or ["*"])]
    settle_offline_mode()
    try:
        root = Path(snapshot_download(ref.repo_id, revision=ref.revision, allow_patterns=allow_patterns,
                                      ignore_patterns=ignore_patterns, **current_access().kwargs()))
    except Exception as err:  # the hub client's errors, network errors: one line each
        raise hub_error(ref, err) from None
    folder = root / ref.subfolder if ref.subfolder else root
    if not folder.is_dir() or not any(folder.iterdir()):
        if is_offline():
            raise ModelError(ref, f"not in the Hugging Face cache, and {offline_reason()}; "
                                  f"fetch it once with internet: {ref.fetch_command()}")
        raise ModelError(ref, f"the repository has no folder {ref.subfolder!r}")
    return folder


def hub_error(ref: ModelRef | str, err: Exception, fetch: str | None = None) -> ModelError:
    """A hub client exception as one line naming ``ref`` and what to do (``fetch``: the command
    that downloads it, when it is not the model's own)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    fetch = fetch or (ref.fetch_command() if isinstance(ref, ModelRef) else f"{FETCH_SCRIPT} {ref}")
    if isinstance(err, LocalEntryNotFoundError):  # not cached, and the hub is out of reach
        why = offline_reason() or "the hub cannot be reached"
        return ModelError(ref, f"not in the Hugging Face cache, and {why}; fetch it once with internet: {fetch}")
    if isinstance(err, GatedRepoError):
        return ModelError(ref, "a gated repository: accept its terms on the hub, then log in with `hf auth login`")
    if isinstance(err, RevisionNotFoundError):
        return ModelError(ref, "no such revision (branch, tag or commit) in the repository")
    if isinstance(err, RepositoryNotFoundError):
        return ModelError(ref, "no such repository on the Hugging Face Hub (a private one needs `hf auth login`)")
    return ModelError(ref, f"cannot download from the Hugging Face Hub ({first_line(err)})")


def locate(ref: str | os.PathLike, subfolder: str | None = None, revision: str | None = None) -> Path:
    """The local folder a reference names, downloading a hub model into the Hugging Face cache."""
    parsed = parse_reference(ref, subfolder, revision)
    if parsed.path is not None:
        if not parsed.path.is_dir():
            raise ModelError(parsed.path, "no such model folder")
        return parsed.path
    return download(parsed)


def is_cached(repo_id: str, revision: str | None = None, filename: str = "config.json") -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename, revision=revision), str)


def prefetch(repo_id: str, revision: str | None = None) -> Path:
    """Download a frozen model (MusicGen, CLIP) into the Hugging Face cache, weights in one format only."""
    from huggingface_hub import HfApi

    ref = ModelRef(repo_id=repo_id, revision=revision)
    if settle_offline_mode():  # the cached snapshot, or one line
        return download(ref)
    try:
        files = HfApi(token=current_access().token).list_repo_files(repo_id, revision=revision)
    except Exception as err:
        raise hub_error(ref, err) from None
    # transformers loads safetensors when present: skip the same weights in other formats.
    ignore = ["*.bin", "*.pt", "*.pth", "*.msgpack", "*.h5", "*.ot"] if any(f.endswith(".safetensors") for f in files) else None
    return download(ref, ignore_patterns=ignore)


def folder_sizes(repo_id: str = THESIS_REPO, revision: str | None = None) -> dict[str, int]:
    """Bytes under each top-two-level folder of a hub repo (``models_peft/nature_small``), from the hub;
    offline, a ModelError at once."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    if settle_offline_mode():
        raise ModelError(repo_id, f"cannot list the repository: {offline_reason()}")

    sizes: dict[str, int] = {}
    for item in HfApi().list_repo_tree(repo_id, recursive=True, revision=revision):
        if isinstance(item, RepoFile):
            folder = "/".join(item.path.split("/")[:2])
            sizes[folder] = sizes.get(folder, 0) + item.size
    return sizes


def fetch_file(repo_id: str, filename: str, revision: str | None = None, fetch: str | None = None) -> Path:
    """One file of a hub repo, from the Hugging Face cache (downloaded if needed); ``fetch`` is the
    command that errors advise (default: downloading the repository)."""
    from huggingface_hub import hf_hub_download

    settle_offline_mode()
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, **current_access().kwargs()))
    except Exception as err:
        raise hub_error(ModelRef(repo_id=repo_id, revision=revision), err, fetch) from None


def push_folder(folder: Path, repo_id: str, subfolder: str | None = None, revision: str | None = None,
                private: bool | None = None, token: str | None = None,
                commit_message: str = "Upload video-to-music model") -> str:
    """Upload a model folder to ``repo_id`` (created if missing); returns the commit's URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), path_in_repo=subfolder or None,
                                 revision=revision, commit_message=commit_message)
    except Exception as err:
        raise ModelError(repo_id, f"cannot upload to the Hugging Face Hub ({first_line(err)})") from None
    return str(getattr(info, "commit_url", info))
