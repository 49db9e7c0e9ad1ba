"""FAD on VGGish (16 kHz) and PANNs CNN14 (32 kHz) embeddings: the real architectures with random
weights saved as a fake torch hub cache, run end to end through the embedding cache, checked against
the ``frechet_audio_distance`` package (gudgud96, 0.3.4) on the same audio and weights, against known
answers (a set against itself, against noisier copies) and offline (one-line errors)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from video_bgm import media
from video_bgm.errors import MediaError, ModelError
from video_bgm.evaluation import weights
from video_bgm.evaluation.embeddings import (PANNS_URL, VGGISH_URL, EmbeddingCache, PannsEmbedder, VggishEmbedder,
                                             read_audio)
from video_bgm.evaluation.fad import fad, frechet_distance, gaussian_stats

from conftest import require_installed, require_reference
from reference_networks import save_panns, save_vggish

FILE_RATE = 44100  # the test files' rate: both embedders resample them (resampy), as the reference does


def _melody(seconds: float, seed: int, rate: int = FILE_RATE) -> np.ndarray:
    """float32 [S]: random quarter-second notes (4 harmonics, decaying), a stand-in for music."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.25 * rate)) / rate
    notes = []
    for _ in range(int(np.ceil(seconds / 0.25))):
        f = 196.0 * 2 ** (rng.integers(0, 24) / 12)
        notes.append(sum(0.5 ** k * np.sin(2 * np.pi * f * (k + 1) * t) for k in range(4)) * np.exp(-5 * t))
    audio = np.concatenate(notes)[: int(seconds * rate)]
    return (0.4 * audio / np.abs(audio).max()).astype(np.float32)


def _noisy(audio: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    noise = np.random.default_rng(seed).normal(0, rms * 10 ** (-snr_db / 20), size=audio.shape)
    return np.clip(audio + noise, -1, 1).astype(np.float32)


# --- the fake cache of weight files and the embedders built from it --------------------------
@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """A TORCH_HOME whose hub/checkpoints hold VGGish's and CNN14's files, random weights in the real
    files' format: VGGish a plain state dict, PANNs {"model": state dict}."""
    home = tmp_path_factory.mktemp("torch-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        save_vggish(0)
        save_panns(1)
    return home


@pytest.fixture(scope="module")
def embedders(torch_home):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(torch_home))
        return {"vggish": VggishEmbedder(), "panns": PannsEmbedder()}


@pytest.fixture(scope="module")
def melodies(tmp_path_factory):
    """Three 3.5 s melodies as 44.1 kHz mono WAVs."""
    folder = tmp_path_factory.mktemp("melodies")
    paths = []
    for seed in range(3):
        paths.append(folder / f"melody{seed}.wav")
        media.write_wav(paths[-1], _melody(3.5, seed), FILE_RATE)
    return paths


# --- end to end through the embedding cache ---------------------------------------------------
def test_vggish_embeds_whole_096s_examples_through_the_cache(embedders, melodies, torch_home, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    vggish = embedders["vggish"]
    assert (vggish.name, vggish.sample_rate) == ("vggish", 16000) and VggishEmbedder.is_cached()
    assert vggish.settings()["weights"] == "vggish-10086976.pth"
    store = EmbeddingCache(tmp_path)
    emb = store.embed_file(melodies[0], vggish, seconds=3.0)
    assert emb.shape == (3, 128) and emb.dtype == np.float32, "3 s: three whole 0.96 s examples"
    assert (emb < 0).any(), "taken before the last ReLU (use_activation=False)"
    assert store.embed_file(melodies[0], vggish).shape == (3, 128), "3.5 s: still three"
    np.testing.assert_array_equal(EmbeddingCache(tmp_path).embed_file(melodies[0], vggish, seconds=3.0), emb)
    assert store.computed == 2
    audio = read_audio(melodies[0], vggish, 3.0)
    assert len(audio) == 48000, "resampled 44.1 -> 16 kHz by the embedder (resampy)"
    np.testing.assert_array_equal(vggish.embed(audio), emb)
    assert np.abs(store.embed_file(melodies[1], vggish, seconds=3.0) - emb).max() > 1e-4
    with pytest.raises(ValueError, match="at least 0.975 s"):
        vggish.embed(np.zeros(15000, np.float32))
    short = tmp_path / "short.wav"
    media.write_wav(short, np.zeros(8000, np.float32), 16000)
    with pytest.raises(MediaError, match="short.wav: vggish: VGGish needs at least 0.975 s"):  # a clip skipped, one line
        store.embed_file(short, vggish)


def test_panns_embeds_one_vector_per_file_through_the_cache(embedders, melodies, torch_home, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    panns = embedders["panns"]
    assert (panns.name, panns.sample_rate) == ("panns", 32000) and PannsEmbedder.is_cached()
    assert panns.settings()["weights"] == "Cnn14_mAP=0.431.pth"
    store = EmbeddingCache(tmp_path)
    emb = store.embed_file(melodies[0], panns, seconds=2.0)
    assert emb.shape == (1, 2048) and emb.dtype == np.float32 and (emb >= 0).all(), "fc1's ReLU output"
    np.testing.assert_array_equal(EmbeddingCache(tmp_path).embed_file(melodies[0], panns, seconds=2.0), emb)
    audio = read_audio(melodies[0], panns, 2.0)
    assert len(audio) == 64000
    np.testing.assert_array_equal(panns.embed(audio), emb)
    assert store.computed == 1
    assert panns.embed(np.zeros(PannsEmbedder._MIN_SAMPLES, np.float32)).shape == (1, 2048)
    with pytest.raises(ValueError, match="at least"):
        panns.embed(np.zeros(PannsEmbedder._MIN_SAMPLES - 1, np.float32))


# --- the reference package --------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference():
    """frechet_audio_distance 0.3.4 (its ``fad`` module and ``load_audio_task``), installed with
    requirements-reference.txt (``--no-deps``) and encodec from requirements-test.txt: its own requirements pin
    numpy<2 on Python < 3.13 (and laion_clap pins numpy 1.x). Its package imports ``laion_clap`` at the
    top, used only for model_name="clap": where laion_clap is not installed, a stand-in module is in
    sys.modules while the package imports (and removed after, so no other test sees it)."""
    import importlib.util

    require_installed("encodec (frechet_audio_distance imports it)", importlib.util.find_spec("encodec") is not None,
                      "pip install -r requirements-test.txt", "REQUIRE_REFERENCES")
    require_reference("frechet_audio_distance", importlib.util.find_spec("frechet_audio_distance") is not None)
    stand_in = "laion_clap" not in sys.modules and importlib.util.find_spec("laion_clap") is None
    if stand_in:
        sys.modules["laion_clap"] = types.ModuleType("laion_clap")  # never called on the vggish/pann paths
    try:
        from frechet_audio_distance import fad as fad_module
        from frechet_audio_distance.utils import load_audio_task
    finally:
        if stand_in:
            del sys.modules["laion_clap"]
    return fad_module, load_audio_task


def _hub_vggish(state: dict):
    """What ``torch.hub.load("harritaylor/torchvggish", "vggish")`` returns, with our random weights.

    The hub's model (hubconf.vggish -> torchvggish/vggish.py ``VGGish``, master f3f9096) is the PyPI
    package's ``VGG`` plus ``forward(x, fs)`` = ``waveform_to_examples(x, fs)`` -> device -> ``VGG.forward``
    (preprocess=True); its vggish_input.py, mel_features.py and vggish_params.py are byte-identical to
    the PyPI package's, so only that class is restated (the hub needs GitHub, the tests run offline).
    """
    from torchvggish.torchvggish import VGG, make_layers
    from torchvggish.vggish_input import waveform_to_examples

    class VGGish(VGG):
        def __init__(self):
            super().__init__(make_layers(), postprocess=False)
            self.load_state_dict(state)
            self.device = torch.device("cpu")

        def forward(self, x, fs=None):
            return VGG.forward(self, waveform_to_examples(x, fs).to(self.device))

    return VGGish()


def test_vggish_equals_the_reference_package(reference, embedders, melodies, torch_home, tmp_path, monkeypatch):
    fad_module, load_audio_task = reference
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the reference picks CUDA when it can
    state = torch.load(weights.cached_path(VGGISH_URL), weights_only=True)

    def hub_load(repo_or_dir, model, **kwargs):
        assert (repo_or_dir, model) == ("harritaylor/torchvggish", "vggish")
        return _hub_vggish(state)

    monkeypatch.setattr(torch.hub, "load", hub_load)
    # its own __init__ and model set-up with its defaults (use_pca=False, use_activation=False)
    ref = fad_module.FrechetAudioDistance(model_name="vggish", sample_rate=16000)
    store = EmbeddingCache(tmp_path)
    for path in melodies:
        theirs = ref.get_embeddings([load_audio_task(str(path), 16000, 1)], sr=16000)
        ours = store.embed_file(path, embedders["vggish"])
        assert ours.shape == theirs.shape == (3, 128)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6 * np.abs(theirs).max())


def test_panns_equals_the_reference_package(reference, embedders, melodies, torch_home, tmp_path, monkeypatch):
    fad_module, load_audio_task = reference
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    # the reference looks for the file under its URL's (quoted) name in torch.hub.get_dir() itself
    hub_dir = torch_home / "hub"
    quoted = hub_dir / "Cnn14_mAP%3D0.431.pth"
    if not quoted.exists():
        quoted.symlink_to(weights.cached_path(PANNS_URL))
    ref = fad_module.FrechetAudioDistance(model_name="pann", sample_rate=32000)
    audios = [load_audio_task(str(path), 32000, 1) for path in melodies]
    # the package concatenates the per-file vectors into one flat array (gudgud96/frechet-audio-distance#37)
    theirs = ref.get_embeddings(audios, sr=32000).reshape(len(melodies), 2048)
    store = EmbeddingCache(tmp_path)
    ours = np.concatenate([store.embed_file(path, embedders["panns"]) for path in melodies])
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6 * np.abs(theirs).max())


@pytest.mark.filterwarnings("ignore:The `disp` argument:DeprecationWarning")  # scipy, in the reference
def test_frechet_distance_equals_the_reference_package(reference):
    fad_module, _ = reference
    ref = object.__new__(fad_module.FrechetAudioDistance)  # its statistics need no model
    rng = np.random.default_rng(0)
    for n, d, shift in ((300, 128, 0.3), (40, 128, 0.1), (6, 64, 1.0)):  # the last: singular covariances
        a = rng.normal(size=(n, d)).astype(np.float32) @ rng.normal(size=(d, d)).astype(np.float32) / np.sqrt(d)
        b = rng.normal(size=(n + 7, d)).astype(np.float32) * 1.3 + shift
        ours_a, ours_b = gaussian_stats(a), gaussian_stats(b)
        theirs_a, theirs_b = ref.calculate_embd_statistics(a), ref.calculate_embd_statistics(b)
        for x, y in zip(ours_a + ours_b, theirs_a + theirs_b):  # theirs in float32 (the embeddings' type)
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
        theirs = float(np.real(ref.calculate_frechet_distance(*theirs_a, *theirs_b)))
        assert frechet_distance(*theirs_a, *theirs_b) == pytest.approx(theirs, rel=1e-6), (n, d)
        assert frechet_distance(*ours_a, *ours_b) == pytest.approx(theirs, rel=1e-4), (n, d)


# --- known answers ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vggish", "panns"])
def test_fad_is_zero_on_the_same_set_and_grows_with_noise(name, embedders):
    """12 one-second melodies (12 VGGish examples) or 6 half-second ones (6 CNN14 vectors of 2048: singular
    covariances), then the same clips with white noise at 40, 30, 20 and 10 dB SNR."""
    embedder = embedders[name]
    count, seconds = (12, 1.0) if name == "vggish" else (6, 0.5)
    clips = [_melody(seconds, seed, embedder.sample_rate) for seed in range(10, 10 + count)]

    def embed_set(audios):
        return np.concatenate([embedder.embed(a) for a in audios])

    clean = embed_set(clips)
    assert fad(clean, clean) == pytest.approx(0.0, abs=1e-6 * np.trace(np.cov(clean, rowvar=False)))
    values = [fad(clean, embed_set([_noisy(c, snr, i) for i, c in enumerate(clips)])) for snr in (40, 30, 20, 10)]
    assert all(np.isfinite(values)) and values[0] > 0
    assert values == sorted(values) and values[-1] > 2 * values[0], values


# --- offline ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,filename", [(VggishEmbedder, "vggish-10086976.pth"),
                                          (PannsEmbedder, "Cnn14_mAP=0.431.pth")])
def test_missing_weights_offline_are_one_line_naming_the_file(cls, filename, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not cls.is_cached()
    with pytest.raises(ModelError) as error:
        cls()
    message = str(error.value)
    assert "\n" not in message and filename in message and "HF_HUB_OFFLINE" in message, message
    assert not (tmp_path / "empty" / "hub" / "checkpoints" / filename).exists()
