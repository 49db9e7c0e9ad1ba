"""Evaluation metrics on their own: Fréchet distance, diversity, retrieval ranks, per-piece
cross-entropy, and the cached CLAP / EnCodec embeddings (tiny random models, offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from video_bgm.evaluation import correspondence, diversity
from video_bgm.evaluation.fad import fad, frechet_distance, gaussian_stats
from video_bgm.synthetic import write_test_audio


# --- Fréchet distance -------------------------------------------------------------------------
def test_frechet_distance_of_diagonal_gaussians_has_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, size=6), rng.uniform(0.1, 3, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_rotated_gaussians_matches_the_closed_form():
    # The same Gaussians seen in a rotated basis: the distance must not change (full covariances).
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.5, 2, size=5), rng.uniform(0.5, 2, size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    value = frechet_distance(q @ mu1, q @ np.diag(s1) @ q.T, q @ mu2, q @ np.diag(s2) @ q.T)
    assert value == pytest.approx(expected, rel=1e-6)


def test_fad_from_samples_converges_to_the_closed_form():
    rng = np.random.default_rng(2)
    a = rng.normal(0.0, 1.0, size=(20000, 3))
    b = rng.normal(1.0, 2.0, size=(20000, 3))  # sqrt(var) 1 vs 2: 3 * (1 + 1) = 6
    assert fad(a, b) == pytest.approx(6.0, rel=0.03)
    assert fad(a, a) == pytest.approx(0.0, abs=1e-9)


def test_singular_covariances_give_a_finite_distance():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(4, 16)), rng.normal(size=(5, 16)) + 1.0  # fewer samples than dimensions
    value = fad(a, b)
    assert np.isfinite(value) and value > 0
    with pytest.raises(ValueError, match="at least 2 embeddings"):
        gaussian_stats(a[:1])


# --- diversity --------------------------------------------------------------------------------
def test_diversity_is_the_mean_pairwise_distance_of_piece_means():
    pieces = [np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([[4.0, 0.0]]), np.array([[1.0, 3.0], [1.0, 5.0]])]
    vectors = np.stack([diversity.piece_vector(p) for p in pieces])  # (1,0), (4,0), (1,4)
    assert diversity.mean_pairwise_distance(vectors) == pytest.approx((3 + 4 + 5) / 3)
    assert diversity.mean_pairwise_distance(vectors[:1]) is None
    # takes: video A's two takes 2 apart; video B's three takes 0 apart; C has one take (left out)
    takes = [np.array([[0.0], [2.0]]), np.array([[1.0], [1.0], [1.0]]), np.array([[7.0]])]
    assert diversity.across_takes(takes) == pytest.approx(1.0)
    # a shared offset does not change it (why Euclidean, not cosine)
    assert diversity.mean_pairwise_distance(vectors + 100) == pytest.approx(diversity.mean_pairwise_distance(vectors))


# --- retrieval ranks --------------------------------------------------------------------------
def test_precision_recall_density_coverage_equal_the_reference_code():
    prdc_reference = pytest.importorskip("prdc")
    from video_bgm.evaluation.manifold import prdc

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 16)), rng.normal(0.3, 1.2, size=(45, 16))
    ours = prdc(real, fake, k=5)
    theirs = prdc_reference.compute_prdc(real, fake, nearest_k=5)
    for name in ("precision", "recall", "density", "coverage"):
        assert ours[name] == pytest.approx(float(theirs[name]), rel=1e-4), name


def test_coverage_and_density_fall_as_the_generated_set_drifts():
    from video_bgm.evaluation.manifold import prdc

    rng = np.random.default_rng(1)
    real = rng.normal(size=(80, 8))
    same = prdc(real, real)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0 and 0.8 < same["density"] < 1.2
    drifting = [prdc(real, real + shift) for shift in (0.0, 0.6, 1.2, 2.5)]  # shifted in every dimension
    for key in ("coverage", "density", "precision"):
        values = [d[key] for d in drifting]
        assert values == sorted(values, reverse=True) and values[-1] < 0.2 * values[0], (key, values)
    assert prdc(real[:5], real) is None, "5 pieces have no 5th neighbour"


def test_ranks_and_retrieval_metrics():
    ce = np.array([[1.0, 2.0, 3.0],   # own video best: rank 1
                   [1.0, 2.0, 3.0],   # own video second: rank 2
                   [1.0, 1.0, 1.0]])  # all tied: the mean rank 2
    assert correspondence.ranks(ce).tolist() == [1.0, 2.0, 2.0]
    m = correspondence.retrieval_metrics(ce)
    assert m["mean_rank"] == pytest.approx(5 / 3) and m["recall_at_1"] == pytest.approx(1 / 3)
    assert m["mrr"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert (m["chance_mean_rank"], m["chance_recall_at_1"]) == (2.0, pytest.approx(1 / 3))
    assert m["chance_mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert m["gain"] == pytest.approx(np.mean([2, 3, 1, 3, 1, 1]) - np.mean([1, 2, 1]))


def test_random_scores_average_to_the_chance_levels():
    rng = np.random.default_rng(4)
    metrics = [correspondence.retrieval_metrics(rng.normal(size=(8, 8))) for _ in range(2000)]
    assert np.mean([m["mean_rank"] for m in metrics]) == pytest.approx(4.5, rel=0.02)
    assert np.mean([m["mrr"] for m in metrics]) == pytest.approx(metrics[0]["chance_mrr"], rel=0.03)


# --- cross-entropy per piece ------------------------------------------------------------------
def test_item_losses_equal_musicgen_loss_one_piece_at_a_time(tiny_model):
    mg = tiny_model.musicgen
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 64, (3, mg.num_codebooks, 30), generator=g)
    codes_mask = torch.ones(3, 30, dtype=torch.bool)
    codes_mask[1, 18:] = False  # a shorter piece
    condition = torch.randn(3, 5, mg.decoder_dim, generator=g)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[2, 3:] = False
    per_item = correspondence.item_losses(mg, condition, mask, codes, codes_mask)
    one_by_one = torch.stack([mg.loss(condition[i:i + 1], mask[i:i + 1], codes[i:i + 1], codes_mask[i:i + 1])
                              for i in range(3)])
    torch.testing.assert_close(per_item, one_by_one, rtol=1e-5, atol=1e-5)


def test_ce_matrix_rows_are_each_piece_under_each_video(tiny_model):
    g = torch.Generator().manual_seed(1)
    n, frames = 3, 4
    features = torch.randn(n, frames, 24, generator=g)
    features_mask = torch.ones(n, frames, dtype=torch.bool)
    codes = torch.randint(0, 64, (n, 4, 20), generator=g)
    codes_mask = torch.ones(n, 20, dtype=torch.bool)
    matrix = correspondence.ce_matrix(tiny_model, features, features_mask, codes, codes_mask, batch_size=2)
    assert matrix.shape == (3, 3)
    condition, mask = tiny_model.condition(features[2:3], features_mask[2:3])
    direct = tiny_model.musicgen.loss(condition, mask, codes[0:1], codes_mask[0:1])
    assert matrix[0, 2] == pytest.approx(direct.item(), rel=1e-5)
    # the video changes the likelihood: the columns differ
    assert np.ptp(matrix[0]) > 0


# --- embeddings and their cache ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tones")
    return {f: write_test_audio(folder / f"tone{int(f)}.wav", 3.0, 44100, 1, freq=f) for f in (220.0, 880.0)}


def test_clap_embeds_windows_deterministically_and_tells_tones_apart(tiny_clap, tones, tmp_path):
    from video_bgm.evaluation.embeddings import ClapEmbedder, EmbeddingCache

    clap = ClapEmbedder(str(tiny_clap))
    assert clap.sample_rate == 48000 and clap.window == 2 * 48000
    store = EmbeddingCache(tmp_path)
    low = store.embed_file(tones[220.0], clap)
    assert low.shape == (2, 24), "3 s = one 2 s window + a 1 s window (kept: at least a second)"
    np.testing.assert_allclose(np.linalg.norm(low, axis=1), 1.0, rtol=1e-5)
    high = store.embed_file(tones[880.0], clap)
    assert np.abs(low - high).max() > 1e-3
    np.testing.assert_array_equal(clap.embed(clap.windows(np.zeros(48000 * 2, np.float32))[0]),
                                  clap.embed(np.zeros(48000 * 2, np.float32))), "no random crop"
    assert clap.embed_text(["calm piano", "upbeat rock"]).shape == (2, 24)


def test_embeddings_are_cached_by_content_and_setting(tiny_model, tones, tmp_path, monkeypatch):
    from video_bgm import media
    from video_bgm.evaluation.embeddings import EmbeddingCache, EncodecEmbedder

    encodec = EncodecEmbedder(tiny_model.musicgen)
    store = EmbeddingCache(tmp_path)
    latents = store.embed_file(tones[220.0], encodec, seconds=2.0)
    assert latents.shape == (100, 16), "50 frames per second, the tiny codec's 16-d latents"
    assert store.computed == 1
    calls = []
    real = media.decode_audio
    monkeypatch.setattr(media, "decode_audio", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = EmbeddingCache(tmp_path)
    np.testing.assert_array_equal(again.embed_file(tones[220.0], encodec, seconds=2.0), latents)
    assert calls == [] and again.computed == 0, "read back, not recomputed"
    assert again.embed_file(tones[220.0], encodec, seconds=1.0).shape == (50, 16), "another span: recomputed"
    assert again.computed == 1
