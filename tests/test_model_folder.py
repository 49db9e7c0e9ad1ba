"""Model folders on disk: what counts as one (the same answer for the loader, the app and the tools)."""

import json

import pytest

from video_bgm import app_support
from video_bgm.config import VideoModelConfig
from video_bgm.errors import ModelError
from video_bgm.model_folder import THESIS_FILES, folder_kind
from video_bgm.pipeline import locate_model


def _folders(root):
    """name -> (folder, kind expected)."""
    cases = {}

    def folder(name, files, kind):
        path = root / name
        path.mkdir(parents=True)
        for file, text in files.items():
            (path / file).write_text(text)
        cases[name] = (path, kind)

    folder("ours", {"config.json": json.dumps(VideoModelConfig().to_dict())}, "ours")
    folder("ours-without-format-keys", {"config.json": '{"fps": 2.0}'}, "ours")  # older folders: format is the default
    folder("thesis", {name: "x" for name in THESIS_FILES}, "thesis")
    folder("thesis-without-weights", {THESIS_FILES[0]: "fps: 1\n"}, None)
    folder("musicgen", {"config.json": '{"model_type": "musicgen"}'}, None)
    folder("broken-json", {"config.json": "{oops"}, None)
    folder("newer-format", {"config.json": '{"format_version": 99}'}, None)
    folder("converted-thesis", {"config.json": '{"fps": 1.0}', THESIS_FILES[0]: "fps: 1\n"}, "ours")
    folder("empty", {}, None)
    return cases


def test_each_kind_of_folder_is_told_apart(tmp_path):
    for name, (path, kind) in _folders(tmp_path).items():
        assert folder_kind(path) == kind, name


def test_the_app_lists_exactly_the_folders_the_loader_accepts(tmp_path):
    """The drift this definition ended: a folder that generate.py loads was missing from the app."""
    cases = _folders(tmp_path / "models")
    listed = set(app_support.discover_models(tmp_path / "models").values())
    for name, (path, kind) in cases.items():
        try:
            locate_model(str(path))
            accepted = True
        except ModelError as err:
            accepted = False
            assert str(err).startswith(str(path)) and "\n" not in str(err), name
        assert accepted == (kind is not None) == (str(path.resolve()) in listed), name


@pytest.mark.parametrize("name, message", [
    ("broken-json", "config.json is not valid JSON"),
    ("musicgen", "unknown key 'model_type'"),
    ("newer-format", "format_version: 99 is newer than this code"),
    ("thesis-without-weights", "nor a thesis checkpoint (configuration.yml and lm_final.pt)"),
])
def test_the_loader_says_why_a_folder_is_not_a_model(tmp_path, name, message):
    path, _ = _folders(tmp_path)[name]
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        locate_model(str(path))
