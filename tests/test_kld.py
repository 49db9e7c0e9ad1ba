"""PaSST KL divergence (evaluation/kld.py): known answers, audiocraft's own code as the reference, and
the real PaSST architecture with random weights end to end (offline, weights in a fake hub cache).

The reference check runs audiocraft's ``audiocraft/metrics/kld.py`` itself. audiocraft pins
torch==2.1 and cannot be installed with its dependencies beside ours; CI makes it importable with
``pip install torchmetrics && pip install --no-deps audiocraft==1.3.0`` (only the package's files;
its ``__init__`` is never run here). Without them those two tests skip.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from video_bgm import media
from video_bgm.errors import ModelError
from video_bgm.evaluation import kld
from video_bgm.evaluation.embeddings import EmbeddingCache

from conftest import require_installed, require_reference
from reference_networks import save_passt

LENGTH = 10  # the 10 s classifier keeps forward passes short; 20 s differs only in its time embedding
RATE = 48_000  # the test files' rate: resampling to 32 kHz is part of what is compared
SECONDS = 11  # a full 10 s segment and a 1 s one


def softmax(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# --- pure functions: known answers --------------------------------------------------------------
def test_hand_computed_value_and_direction():
    # reference p = (1/2, 1/2), generated q = (1/4, 3/4): logits (0, 0) and (0, log 3)
    ref, gen = np.array([[0.0, 0.0]]), np.array([[0.0, math.log(3.0)]])
    eps = 1e-6
    kl_p_q = 0.5 * math.log(0.5 / (0.25 + eps)) + 0.5 * math.log(0.5 / (0.75 + eps))  # KL(ref || gen) ~ 0.1438
    kl_q_p = 0.25 * math.log(0.25 / (0.5 + eps)) + 0.75 * math.log(0.75 / (0.5 + eps))  # KL(gen || ref) ~ 0.1308
    assert kld.kl_divergence(gen, ref) == pytest.approx(kl_p_q, rel=1e-5)
    assert kld.kl_divergence(ref, gen) == pytest.approx(kl_q_p, rel=1e-5)  # audiocraft's kld_qp
    assert abs(kl_p_q - kl_q_p) > 0.01  # the direction is visible
    np.testing.assert_allclose(kld.label_distribution(gen), [[0.25, 0.75]], rtol=1e-6)


def test_identical_inputs_give_zero_up_to_audiocrafts_epsilon():
    logits = np.random.default_rng(0).normal(0, 3, size=(3, kld.NUM_CLASSES)).astype(np.float32)
    p = softmax(logits)
    # audiocraft adds 1e-6 to the generated side only: sum p log(p / (p + eps)), about -527e-6
    expected = float(np.mean(-np.sum(p * np.log1p(1e-6 / p), axis=-1)))
    value = kld.kl_divergence(logits, logits)
    assert value == pytest.approx(expected, rel=1e-3, abs=1e-7)
    assert -kld.NUM_CLASSES * 1e-6 <= value <= 0
    assert kld.kl_divergence(logits, logits, epsilon=0.0) == pytest.approx(0.0, abs=1e-6)


def test_value_grows_as_the_generated_distribution_moves_away():
    rng = np.random.default_rng(1)
    p, other = softmax(rng.normal(0, 2, size=(1, 50))), softmax(rng.normal(0, 2, size=(1, 50)))
    values = [kld.kl_divergence(np.log((1 - t) * p + t * other), np.log(p)) for t in np.linspace(0, 1, 6)]
    assert all(b > a for a, b in zip(values, values[1:])), values
    assert values[0] == pytest.approx(0.0, abs=1e-4)


def test_segments_pair_in_order_and_the_set_mean_weights_segments():
    rng = np.random.default_rng(2)
    g1, r1 = rng.normal(size=(2, 8)), rng.normal(size=(2, 8))
    g2, r2 = rng.normal(size=(1, 8)), rng.normal(size=(1, 8))
    per_segment = kld.segment_kl(g1, r1)
    assert per_segment.shape == (2,)
    assert per_segment[1] == pytest.approx(kld.kl_divergence(g1[1:], r1[1:]), rel=1e-6)
    assert kld.kl_divergence(g1, r1) == pytest.approx(per_segment.mean(), rel=1e-6)
    # audiocraft divides the sum over all segment pairs by their number, not by the number of pieces
    expected = (per_segment.sum() + kld.segment_kl(g2, r2).sum()) / 3
    assert kld.mean_kl([(g1, r1), (g2, r2)]) == pytest.approx(expected, rel=1e-6)
    assert kld.segment_kl(g1, r1[:1]).shape == (1,)  # only the segments both have
    with pytest.raises(ValueError, match="no segment"):
        kld.kl_divergence(g1[:0], r1)


# --- audiocraft itself as the reference ---------------------------------------------------------
@pytest.fixture(scope="module")
def audiocraft_kld():
    """audiocraft/metrics/kld.py (and data/audio_utils.py it imports), loaded from the installed files.

    Stand-ins, in sys.modules only while the module loads: the packages ``audiocraft``,
    ``audiocraft.data`` and ``audiocraft.metrics`` as empty namespaces over the real folders, so their
    ``__init__`` files (which import the models, xformers, spacy... none of it on the KL's path) do
    not run. Everything the metric computes with is the real code: kld.py, audio_utils.convert_audio,
    julius, torchmetrics, hear21passt.
    """
    require_installed("torchmetrics", importlib.util.find_spec("torchmetrics") is not None,
                      "pip install -r requirements-test.txt", "REQUIRE_REFERENCES")
    spec = importlib.util.find_spec("audiocraft")  # finds the package without running its __init__
    require_reference("audiocraft's metric code", spec is not None and bool(spec.submodule_search_locations))
    root = Path(next(iter(spec.submodule_search_locations)))
    saved = {name: mod for name, mod in sys.modules.items() if name == "audiocraft" or name.startswith("audiocraft.")}
    try:
        for name, folder in (("audiocraft", root), ("audiocraft.data", root / "data"),
                             ("audiocraft.metrics", root / "metrics")):
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            sys.modules[name] = package
        module = importlib.import_module("audiocraft.metrics.kld")
    finally:
        for name in [n for n in sys.modules if n == "audiocraft" or n.startswith("audiocraft.")]:
            del sys.modules[name]
        sys.modules.update(saved)
    return module


def test_kl_matches_audiocrafts_function(audiocraft_kld):
    rng = np.random.default_rng(3)
    gen = rng.normal(0, 3, size=(5, kld.NUM_CLASSES)).astype(np.float32)
    ref = rng.normal(0, 3, size=(5, kld.NUM_CLASSES)).astype(np.float32)
    probs = lambda x: torch.softmax(torch.from_numpy(x), dim=-1)  # noqa: E731  (audiocraft's _get_model_preds)
    theirs = audiocraft_kld.kl_divergence(probs(gen), probs(ref)).numpy()
    np.testing.assert_allclose(kld.segment_kl(gen, ref), theirs, rtol=1e-6)


# --- the real network with random weights, end to end -------------------------------------------
@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A fake torch hub cache holding PaSST's 10 s weight file: hear21passt's network, random weights."""
    home = tmp_path_factory.mktemp("torch-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        yield home, save_passt(LENGTH)


@pytest.fixture(scope="module")
def classifier(hub):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(hub[0]))
        assert kld.PasstClassifier.is_cached(LENGTH) and not kld.PasstClassifier.is_cached(20)
        return kld.PasstClassifier(pretrained_length=LENGTH)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory) -> dict[str, Path]:
    """Two different 11 s stereo 48 kHz pieces: one 10 s segment and one of 1 s each."""
    folder = tmp_path_factory.mktemp("kld-audio")
    t = np.arange(int(SECONDS * RATE)) / RATE
    rng = np.random.default_rng(4)
    tonal = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 330 * t + 0.5)
    clicks = (rng.random(t.size) < 0.002) * rng.normal(0, 0.6, t.size)
    noise = 0.2 * rng.normal(size=t.size) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    pieces = {"tonal": np.stack([tonal, 0.8 * tonal]), "noisy": np.stack([noise + clicks, noise - clicks])}
    paths = {}
    for name, audio in pieces.items():
        paths[name] = folder / f"{name}.wav"
        media.write_wav(paths[name], audio.astype(np.float32), RATE)
    return paths


def test_urls_and_archs_are_hear21passts():
    from hear21passt.models.passt import default_cfgs

    for length, (_, variant, _, url) in kld.ARCHS.items():
        assert default_cfgs[variant]["url"] == url, length


@pytest.fixture(scope="module")
def embedded(classifier, wavs, tmp_path_factory):
    cache = EmbeddingCache(tmp_path_factory.mktemp("kld-cache"))
    return cache, {name: cache.embed_file(path, classifier) for name, path in wavs.items()}


def test_the_default_20_s_network_is_hear21passts(monkeypatch):
    """build_passt(20) against hear21passt.base20sec.get_basic_model (audiocraft's pretrained_length=20),
    download off: the same modules, parameter shapes (the time embedding for 2000 frames) and front end."""
    import hear21passt.base20sec
    from hear21passt.models.passt import get_model

    monkeypatch.setattr(hear21passt.base20sec, "get_model_passt", functools.partial(get_model, pretrained=False))
    with kld._quiet():
        theirs = hear21passt.base20sec.get_basic_model(mode="logits")
    ours = kld.build_passt(20)
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}  # noqa: E731
    assert shapes(ours) == shapes(theirs)
    assert repr(ours) == repr(theirs) and ours.mode == theirs.mode == "logits"
    assert vars(ours.mel).keys() == vars(theirs.mel).keys()
    for key in ("n_mels", "n_fft", "sr", "win_length", "hopsize", "fmin", "fmax", "fmin_aug_range", "fmax_aug_range"):
        assert getattr(ours.mel, key) == getattr(theirs.mel, key), key


def test_end_to_end_with_the_embedding_cache(classifier, wavs, embedded):
    cache, emb = embedded
    tonal, noisy = emb["tonal"], emb["noisy"]
    assert tonal.shape == noisy.shape == (2, kld.NUM_CLASSES) and tonal.dtype == np.float32
    again = cache.embed_file(wavs["tonal"], classifier)
    assert cache.computed == 2 and np.array_equal(again, tonal)  # the second time from the cache
    value = kld.kl_divergence(noisy, tonal)
    assert value > 1e-3, value  # well above the -527e-6 a piece scores against itself
    assert kld.kl_divergence(tonal, noisy) > 1e-3
    assert kld.kl_divergence(again, tonal) == pytest.approx(0.0, abs=kld.NUM_CLASSES * kld.EPSILON)
    # the first 2 s: one segment, its own cache entry
    assert cache.embed_file(wavs["tonal"], classifier, 2.0).shape == (1, kld.NUM_CLASSES)


def test_matches_audiocrafts_metric_on_the_same_network(audiocraft_kld, hub, wavs, embedded, monkeypatch):
    """audiocraft's PasstKLDivergenceMetric, whole (julius resampling, downmix, segmentation, PaSST,
    softmax, KL, averaging) on hear21passt's own get_basic_model, its download turned off and the
    same random weights loaded (strictly) afterwards."""
    import hear21passt.base
    import soundfile
    from hear21passt.models.passt import get_model

    monkeypatch.setattr(hear21passt.base, "get_model_passt", functools.partial(get_model, pretrained=False))
    metric = audiocraft_kld.PasstKLDivergenceMetric(pretrained_length=LENGTH)
    metric.model.net.load_state_dict(hub[1], strict=True)

    audio = {name: torch.from_numpy(soundfile.read(path, dtype="float32", always_2d=True)[0].T.copy())
             for name, path in wavs.items()}
    # one clip: generated "tonal" against reference "noisy" (two segment pairs)
    preds, targets = audio["tonal"][None], audio["noisy"][None]
    metric.update(preds, targets, torch.tensor([preds.shape[-1]]), torch.tensor([RATE]))
    theirs = metric.compute()

    emb = embedded[1]
    assert kld.mean_kl([(emb["tonal"], emb["noisy"])]) == pytest.approx(theirs["kld"], rel=1e-4)
    assert kld.kl_divergence(emb["tonal"], emb["noisy"]) == pytest.approx(theirs["kld"], rel=1e-4)
    assert kld.kl_divergence(emb["noisy"], emb["tonal"]) == pytest.approx(theirs["kld_qp"], rel=1e-4)
    assert theirs["kld"] > 1e-3 and abs(theirs["kld"] - theirs["kld_qp"]) > 1e-4  # a real comparison


# --- offline ------------------------------------------------------------------------------------
def test_offline_without_the_weights_is_one_line_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not kld.PasstClassifier.is_cached()
    with pytest.raises(ModelError) as info:
        kld.PasstClassifier()
    message = str(info.value)
    assert "\n" not in message
    assert "passt-s-f128-20sec-p16-s10-ap.474-swa.pt" in message and "HF_HUB_OFFLINE" in message
