"""Clips: the data layouts, the manifest, and the split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from video_bgm.data.clips import Clip, find_clips, split_clips
from video_bgm.data.config import DataConfig
from video_bgm.errors import UserInputError
from video_bgm.synthetic import write_test_audio, write_test_video


def test_training_finds_every_video_that_generation_does(tmp_path):
    """One list of video extensions: .3gp and .mts clips get music in folder mode and train too."""
    from video_bgm.batch import videos_in

    videos = tmp_path / "videos"
    (videos / ".hidden").mkdir(parents=True)
    for name in ("a.mp4", "b.3gp", "c.MTS", "d.m4v", ".e.mp4", ".hidden/f.mp4", "notes.txt"):
        (videos / name).write_bytes(b"")
    clips, _ = find_clips(DataConfig(layout="videos_with_audio", videos=str(videos)))
    assert [c.video for c in clips] == videos_in(videos, recursive=True)
    assert [c.video.name for c in clips] == ["a.mp4", "b.3gp", "c.MTS", "d.m4v"]


def test_layouts_pair_videos_with_their_music(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b", "c"):
        write_test_video(videos / f"{name}.mp4", duration=1.0, audio=False)
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    write_test_audio(wavs / "a.wav", 1.0)
    write_test_audio(wavs / "b.wav", 1.0)
    clips, skipped = find_clips(DataConfig(layout="videos_and_wavs", videos=str(videos), audio=str(wavs)))
    assert [c.id for c in clips] == ["a", "b"] and clips[0].audio == wavs / "a.wav"
    assert len(skipped) == 1 and "c.mp4" in skipped[0].what and "no music file" in skipped[0].why

    demucs = tmp_path / "sep" / "htdemucs"
    for name in ("a", "c"):
        (demucs / name).mkdir(parents=True)
        write_test_audio(demucs / name / "no_vocals.wav", 1.0)
    clips, skipped = find_clips(DataConfig(layout="demucs", videos=str(videos), audio=str(tmp_path / "sep")))
    assert [c.id for c in clips] == ["a", "c"] and clips[1].audio == demucs / "c" / "no_vocals.wav"

    clips, _ = find_clips(DataConfig(layout="videos_with_audio", videos=str(videos)))
    assert [c.audio for c in clips] == [c.video for c in clips]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_manifest_layout_with_captions(tmp_path, suffix):
    write_test_video(tmp_path / "v1.mp4", duration=1.0)
    write_test_audio(tmp_path / "m1.wav", 1.0)
    rows = [{"video": "v1.mp4", "audio": "m1.wav", "caption": "calm piano"}, {"video": "missing.mp4"}]
    manifest = tmp_path / f"pairs{suffix}"
    if suffix == ".csv":
        manifest.write_text("video,audio,caption\nv1.mp4,m1.wav,calm piano\nmissing.mp4,,\n")
    else:
        manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    clips, skipped = find_clips(DataConfig(layout="manifest", manifest=str(manifest)))
    assert [(c.id, c.audio.name, c.caption) for c in clips] == [("v1", "m1.wav", "calm piano")]
    assert len(skipped) == 1 and "missing.mp4" in skipped[0].why


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="empty: no videos found"):
        find_clips(DataConfig(videos=str(tmp_path / "empty")))


def test_split_is_seeded_and_disjoint():
    clips = [Clip(f"c{i}", Path(f"c{i}"), Path(f"c{i}")) for i in range(20)]
    split = split_clips(clips, 0.1, 0.2, seed=3)
    assert split == split_clips(clips, 0.1, 0.2, seed=3) != split_clips(clips, 0.1, 0.2, seed=4)
    assert (len(split["validation"]), len(split["test"]), len(split["training"])) == (2, 4, 14)
    assert not set(split["validation"]) & set(split["test"]) & set(split["training"])


def test_clips_without_groups_split_as_before():
    """Per clip, as split.json files written before groups existed: the same seed gives the same split."""
    import random

    clips = [Clip(f"c{i:02d}", Path("v"), Path("v")) for i in range(20)]
    ids = sorted(c.id for c in clips)
    random.Random(5).shuffle(ids)
    assert split_clips(clips, 0.1, 0.2, seed=5) == {
        "validation": sorted(ids[:2]), "test": sorted(ids[2:6]), "training": sorted(ids[6:])}


@pytest.mark.parametrize("seed", range(8))
def test_a_group_lands_in_one_split(seed):
    """Clips cut from one source video (one group) never span two splits, whatever the seed."""
    sizes = [1, 7, 3, 2, 5, 4, 1, 6, 2, 3]
    clips = [Clip(f"s{g}/{k}", Path("v"), Path("v"), group=f"s{g}") for g, n in enumerate(sizes) for k in range(n)]
    split = split_clips(clips, 0.15, 0.15, seed=seed)
    where = {i: name for name, ids in split.items() for i in ids}
    assert sorted(where) == sorted(c.id for c in clips)
    for g in range(len(sizes)):
        assert len({where[c.id] for c in clips if c.group == f"s{g}"}) == 1, f"group s{g} is split"
    assert split["validation"] and split["test"] and split["training"]


def test_manifest_groups_ids_and_dropped_rows(tmp_path):
    write_test_video(tmp_path / "long.mp4", duration=1.0)
    rows = [{"id": "long/a", "video": "long.mp4", "group": "long"},
            {"id": "long/b", "video": "long.mp4", "group": "long"},
            {"id": "long/c", "video": "long.mp4", "group": "long", "kept": False, "dropped": "static picture"}]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    clips, skipped = find_clips(DataConfig(layout="manifest", manifest=str(manifest)))
    assert [(c.id, c.group) for c in clips] == [("long/a", "long"), ("long/b", "long")] and not skipped
    with pytest.raises(UserInputError, match="clip long/a is listed twice"):
        manifest.write_text("\n".join(json.dumps(r) for r in rows[:1] * 2) + "\n")
        find_clips(DataConfig(layout="manifest", manifest=str(manifest)))
