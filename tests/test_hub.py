"""Hub references against a local Hugging Face cache laid out as huggingface_hub lays it out
(models--owner--name/{blobs, refs, snapshots/<commit>}), resolved by huggingface_hub itself,
offline; download_models.py; push_to_hub with the hub client replaced by a recorder."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import pytest
import torch

from conftest import PYTHON, REPO, load_script
from thesis_reference import folder_files, random_thesis_model, training_config, write_hub_cache, write_thesis_folder
from video_bgm import hub
from video_bgm.cli import run
from video_bgm.errors import ModelError
from video_bgm.pipeline import VideoBGM

REPO_ID = "someone/bgm-models"
COMMIT_A, COMMIT_B = "a" * 40, "b" * 40


generate_cli = load_script("code/inference/generate.py")
download_cli = load_script("code/tools/download_models.py")


def call(main, prog: str, *argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        run(lambda: main([str(a) for a in argv]), prog)
    return exit_info.value.code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory, tiny_bundle) -> Path:
    """Two repos in a fresh HF cache:
    - someone/bgm-models: our tiny model at the root (main = commit A; branch v1 = commit B with other
      weights) and a thesis checkpoint under models_frozen_decoder/nature_small;
    - the thesis repo with its nature_small checkpoint (naming the tiny stereo MusicGen by path)."""
    root = tmp_path_factory.mktemp("hf")
    cache = root / "cache"
    stereo = tiny_bundle["video-encoder-stereo"].parent / "musicgen-stereo"
    model = VideoBGM.from_pretrained(tiny_bundle["video-encoder"], device="cpu")
    model_a = model.save_pretrained(root / "model-a")  # absolute references to the tiny MusicGen and CLIP
    with torch.no_grad():
        for p in model.temporal.parameters():
            p.add_(1.0)
    model_b = model.save_pretrained(root / "model-b")
    thesis_dir = write_thesis_folder(root / "thesis", random_thesis_model(out_dim=64), training_config(str(stereo)))
    sub = "models_frozen_decoder/nature_small/"
    write_hub_cache(cache, REPO_ID, {**folder_files(model_a), **folder_files(thesis_dir, sub)}, COMMIT_A)
    write_hub_cache(cache, REPO_ID, folder_files(model_b), COMMIT_B, refs=("v1",))
    write_hub_cache(cache, hub.THESIS_REPO, folder_files(thesis_dir, sub), "c" * 40)
    return cache


@pytest.fixture
def offline_cache(hub_cache, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hub_cache


def _temporal_weights(model):
    return torch.cat([p.detach().flatten() for p in model.temporal.parameters()])


def test_repo_id_revision_and_subfolder_resolve_from_the_cache(offline_cache, tiny_bundle):
    main = VideoBGM.from_pretrained(REPO_ID, device="cpu")
    snapshot = offline_cache / "models--someone--bgm-models" / "snapshots" / COMMIT_A
    assert main.config.temporal.output_space == "t5"
    by_commit = VideoBGM.from_pretrained(REPO_ID, device="cpu", revision=COMMIT_A)
    branch = VideoBGM.from_pretrained(REPO_ID, device="cpu", revision="v1")
    assert torch.equal(_temporal_weights(main), _temporal_weights(by_commit))
    torch.testing.assert_close(_temporal_weights(branch), _temporal_weights(main) + 1.0)

    thesis_model = VideoBGM.from_pretrained(REPO_ID, device="cpu", subfolder="models_frozen_decoder/nature_small")
    assert thesis_model.config.num_frames == 30 and thesis_model.info["source"] == str(
        snapshot / "models_frozen_decoder" / "nature_small")
    named = VideoBGM.from_pretrained("nature_small", device="cpu")  # a checkpoint name: the thesis repo
    assert torch.equal(_temporal_weights(named), _temporal_weights(thesis_model))


def test_references_parse_as_folders_repos_and_checkpoint_names(tmp_path):
    assert hub.parse_reference(tmp_path).path == tmp_path.resolve()
    ref = hub.parse_reference("owner/name", subfolder="/a/b/", revision="v2")
    assert (ref.repo_id, ref.subfolder, ref.revision) == ("owner/name", "a/b", "v2")
    assert ref.fetch_command() == "python code/tools/download_models.py owner/name --subfolder a/b --revision v2"
    named = hub.parse_reference("symmv_large_peft")
    assert (named.repo_id, named.subfolder) == (hub.THESIS_REPO, "models_peft/symmv_large")
    assert named.fetch_command() == "python code/tools/download_models.py symmv_large_peft"
    assert len(hub.CATALOG) == 12
    for bad in ("just-a-name", "a/b/c", "./relative/missing"):
        with pytest.raises(ModelError, match="no such model folder"):
            hub.parse_reference(bad)
    with pytest.raises(ModelError, match="--revision applies to hub repos"):
        hub.parse_reference(tmp_path, revision="v1")


OFFLINE_CASES = {
    "unknown repo": (["--model", "nobody/no-such-model"],
                     "nobody/no-such-model: not in the Hugging Face cache, and HF_HUB_OFFLINE=1 keeps the hub out of "
                     "reach; fetch it once with internet: python code/tools/download_models.py nobody/no-such-model"),
    "subfolder not cached": (["--model", REPO_ID, "--subfolder", "models_peft/symmv_small"],
                             "fetch it once with internet: python code/tools/download_models.py someone/bgm-models "
                             "--subfolder models_peft/symmv_small"),
    "checkpoint not cached": (["--model", "symmv_medium"],
                              "fetch it once with internet: python code/tools/download_models.py symmv_medium"),
    "revision not cached": (["--model", REPO_ID, "--revision", "v9"], "--revision v9"),
}


@pytest.mark.parametrize("case", list(OFFLINE_CASES))
def test_offline_missing_models_are_one_line_with_the_fetch_command(offline_cache, tmp_path, clip_3s, case):
    args, expect = OFFLINE_CASES[case]
    code, _, err = call(generate_cli.main, "generate.py", clip_3s, *args, "--out", tmp_path / "o.mp4", "--quiet")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    assert expect in err, err


def _env(cache: Path, **extra) -> dict:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", **extra}
    env.pop("HF_HOME", None)
    return env


def test_no_network_is_the_same_one_line(hub_cache, tmp_path, clip_3s):
    """Online mode, but the hub unreachable (a closed local port): the cache answers, or one line."""
    import subprocess

    env = _env(hub_cache, HF_HUB_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9")
    result = subprocess.run([PYTHON, str(REPO / "code/tools/download_models.py"), "nobody/no-such-model"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "not in the Hugging Face cache, and the hub (127.0.0.1) cannot be reached; fetch it once with internet" in result.stderr
    assert "Retrying" not in result.stderr


def test_generate_without_model_uses_the_default_checkpoint(hub_cache, tmp_path, clip_3s):
    import subprocess

    result = subprocess.run([PYTHON, str(REPO / "code/inference/generate.py"), clip_3s, "--out", tmp_path / "d.mp4",
                             "--duration", "1", "--seed", "0", "--quiet"],
                            env=_env(hub_cache), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d.wav").is_file() and (tmp_path / "d.mp4").is_file()


def test_download_models_lists_and_converts_from_the_cache(offline_cache, tmp_path):
    code, out, err = call(download_cli.main, "download_models.py", "--list", "--models-dir", tmp_path)
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.split() and line.split()[0] in hub.CATALOG]
    assert len(rows) == 12
    assert "approximate" in out and "~1.35 GB" in rows[0] and "HF cache" in rows[0]  # nature_small is cached
    assert any("symmv_large_peft" in r and "yes" in r and "~14.79 GB" in r for r in rows)

    code, out, err = call(download_cli.main, "download_models.py", "nature_small", "--models-dir", tmp_path)
    assert code == 0, err
    converted = tmp_path / "nature_small"
    assert sorted(p.name for p in converted.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert f"--model {converted}" in out
    model = VideoBGM.from_pretrained(converted, device="cpu")
    assert model.info["source"].startswith(hub.THESIS_REPO)
    code, out, err = call(download_cli.main, "download_models.py", "--list", "--models-dir", tmp_path)
    assert "models/nature_small" in out.splitlines()[2]

    code, _, err = call(download_cli.main, "download_models.py", "--examples", "--examples-dir", tmp_path / "ex")
    assert code == 1 and err.count("\n") == 1 and "not in the Hugging Face cache" in err, err  # offline, not cached
    assert err.rstrip().endswith("download_models.py --examples"), "advises the examples, not the whole repository"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is: connections are refused at once


def test_an_unreachable_hub_fails_at_once_without_retries(tmp_path, clip_3s):
    """No HF_HUB_OFFLINE, but the hub cannot be reached (its endpoint here is a closed local port):
    one line at once, where huggingface_hub alone retries five times with back-off."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env |= {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}", "HF_HOME": str(tmp_path / "hf")}

    def script(*args):
        return subprocess.run([PYTHON, *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)

    listing = script("code/tools/download_models.py", "--list", "--models-dir", tmp_path)
    assert listing.returncode == 0 and "approximate: the hub is out of reach" in listing.stdout
    assert "Retrying" not in listing.stderr and listing.stderr == "", listing.stderr
    examples = script("code/tools/download_models.py", "--examples", "--examples-dir", tmp_path / "ex")
    assert examples.returncode == 1 and examples.stderr.count("\n") == 1, examples.stderr
    assert "the hub (127.0.0.1) cannot be reached" in examples.stderr
    generated = script("code/inference/generate.py", clip_3s, "--model", "someone/not-cached", "--out", tmp_path / "o.mp4")
    assert generated.returncode == 1 and generated.stderr.count("\n") == 1, generated.stderr
    assert "someone/not-cached" in generated.stderr and "cannot be reached" in generated.stderr
    assert not (tmp_path / "o.mp4").exists()


class RecordingHfApi:
    """Stands in for huggingface_hub.HfApi: records the calls and keeps a copy of the uploaded folder."""

    calls: list = []
    uploaded: Path | None = None

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, private=None, exist_ok=False):
        RecordingHfApi.calls.append(("create_repo", repo_id, private))

    def create_branch(self, repo_id, branch, exist_ok=False):
        RecordingHfApi.calls.append(("create_branch", repo_id, branch))

    def upload_folder(self, repo_id, folder_path, path_in_repo=None, revision=None, commit_message=None):
        RecordingHfApi.calls.append(("upload_folder", repo_id, path_in_repo, revision))
        shutil.copytree(folder_path, RecordingHfApi.uploaded)
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/123"})()


def test_push_to_hub_uploads_a_loadable_model_with_a_card(offline_cache, tmp_path, monkeypatch, tiny_model, tiny_bundle):
    import huggingface_hub

    with pytest.raises(ModelError, match="names a local path"):  # the tiny model names its MusicGen by path
        tiny_model.push_to_hub("me/my-model")

    stereo = tiny_bundle["video-encoder-stereo"].parent / "musicgen-stereo"
    model = VideoBGM.from_pretrained("nature_small", device="cpu")
    model.config.musicgen = "facebook/musicgen-stereo-small"  # as the published checkpoint names it
    model.info["metrics"] = {"validation_loss": 4.25, "steps": 1000}
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    RecordingHfApi.calls, RecordingHfApi.uploaded = [], tmp_path / "uploaded"
    url = model.push_to_hub("me/my-model", subfolder="v1/small", revision="dev", private=True)

    assert url == "https://huggingface.co/me/my-model/commit/123"
    assert RecordingHfApi.calls == [("create_repo", "me/my-model", True), ("create_branch", "me/my-model", "dev"),
                                    ("upload_folder", "me/my-model", "v1/small", "dev")]
    card = (RecordingHfApi.uploaded / "README.md").read_text()
    front = card.split("---")[1]
    assert "license: cc-by-nc-4.0" in front and "facebook/musicgen-stereo-small" in front
    assert "ResNet-50" in card and "validation_loss | 4.25" in card and "## Training configuration" in card
    again = VideoBGM.from_pretrained(RecordingHfApi.uploaded, device="cpu", musicgen=str(stereo))
    assert torch.equal(_temporal_weights(again), _temporal_weights(model))
    assert again.info["metrics"]["steps"] == 1000


@pytest.fixture
def online_cache(hub_cache, monkeypatch):
    """The same cache, with the hub not switched off: only local_files_only keeps the calls local."""
    import socket

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("the hub was contacted")

    monkeypatch.setattr(socket, "create_connection", no_network)
    return hub_cache


def test_local_files_only_loads_from_the_cache_without_asking_the_hub(online_cache):
    model = VideoBGM.from_pretrained(REPO_ID, device="cpu", local_files_only=True)
    assert model.config.temporal.output_space == "t5"
    with pytest.raises(ModelError, match=r"^someone/absent: not in the Hugging Face cache, and local_files_only=True "
                                         r"keeps the hub out of reach; fetch it once with internet: "):
        VideoBGM.from_pretrained("someone/absent", device="cpu", local_files_only=True)
    assert not hub.is_offline()  # only that load was local


def test_the_token_reaches_the_hub_client(online_cache, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    seen = {}

    def snapshot_download(repo_id, **kwargs):
        seen.update(kwargs, repo_id=repo_id)
        raise LocalEntryNotFoundError("stop here")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    with pytest.raises(ModelError, match="someone/private: not in the Hugging Face cache"):
        VideoBGM.from_pretrained("someone/private", device="cpu", token="hf_secret", local_files_only=True)
    assert (seen["repo_id"], seen["token"], seen["local_files_only"]) == ("someone/private", "hf_secret", True)


def test_dtype_is_the_hugging_face_name_for_the_precision(tiny_bundle):
    model = VideoBGM.from_pretrained(tiny_bundle["video-encoder"], device="cpu", dtype=torch.bfloat16)
    assert model.musicgen.model.decoder.dtype == torch.bfloat16
    assert model.musicgen.model.audio_encoder.dtype == torch.float32  # EnCodec stays float32, as with precision
    named = VideoBGM.from_pretrained(tiny_bundle["video-encoder"], device="cpu", dtype="float32")
    assert named.musicgen.model.decoder.dtype == torch.float32
    with pytest.raises(ValueError, match="disagree"):
        VideoBGM.from_pretrained(tiny_bundle["video-encoder"], device="cpu", dtype="bfloat16", precision="fp32")
    with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16"):
        VideoBGM.from_pretrained(tiny_bundle["video-encoder"], device="cpu", dtype=torch.float16)
