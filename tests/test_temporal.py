"""The trainable temporal transformer: shapes, masks, positions, gradients, golden values."""

import pytest
import torch

from video_bgm.config import TemporalConfig
from video_bgm.temporal import TemporalTransformer, sinusoidal_positions


def _model(**overrides):
    torch.manual_seed(0)
    config = TemporalConfig(feature_dim=12, d_model=16, num_layers=2, num_heads=4, ff_dim=32,
                            max_positions=40, output_dim=20, **overrides)
    return TemporalTransformer(config).eval()


@pytest.mark.parametrize("num_tokens", [0, 6])
def test_shapes_and_token_mask(num_tokens):
    model = _model(num_tokens=num_tokens)
    features = torch.randn(3, 9, 12)
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, 5:] = False
    tokens, token_mask = model(features, mask)
    n = num_tokens or 9
    assert tokens.shape == (3, n, 20) and token_mask.shape == (3, n)
    if num_tokens == 0:
        assert token_mask.equal(mask)
        assert tokens[1, 5:].abs().sum() == 0, "padded frames give all-zero tokens"
    else:
        assert token_mask.all()


@pytest.mark.parametrize("num_tokens", [0, 6])
@pytest.mark.parametrize("norm_first", [True, False])
def test_padding_does_not_change_real_outputs(num_tokens, norm_first):
    """A clip gives the same tokens alone as inside a batch padded to a longer clip."""
    model = _model(num_tokens=num_tokens, norm_first=norm_first)
    short = torch.randn(1, 5, 12)
    alone, _ = model(short)
    padded = torch.cat([short, torch.randn(1, 4, 12)], dim=1)
    batch = torch.cat([padded, torch.randn(1, 9, 12)])
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[0, 5:] = False
    together, _ = model(batch, mask)
    torch.testing.assert_close(together[0, : alone.shape[1]], alone[0], atol=1e-5, rtol=1e-5)


def test_positions_make_order_matter():
    model = _model()
    features = torch.randn(1, 6, 12)
    forward, _ = model(features)
    backward, _ = model(features.flip(1))
    assert not torch.allclose(forward, backward.flip(1), atol=1e-4)


def test_sinusoidal_table_matches_formula():
    pe = sinusoidal_positions(30, 2048)
    p, i = 7, 100
    assert pe.shape == (30, 2048)
    torch.testing.assert_close(pe[p, 2 * i], torch.tensor(float(torch.sin(torch.tensor(p / 10000 ** (2 * i / 2048.0))))))
    torch.testing.assert_close(pe[p, 2 * i + 1], torch.tensor(float(torch.cos(torch.tensor(p / 10000 ** (2 * i / 2048.0))))))


def test_too_many_frames_is_an_error():
    with pytest.raises(ValueError, match="41 frames exceed"):
        _model()(torch.randn(1, 41, 12))


def test_every_parameter_gets_a_gradient():
    model = _model(num_tokens=4).train()
    tokens, _ = model(torch.randn(2, 7, 12))
    tokens.square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_bad_config_values_are_rejected():
    with pytest.raises(ValueError, match="num_heads"):
        TemporalTransformer(TemporalConfig(d_model=10, num_heads=4))
    with pytest.raises(ValueError, match="dropout"):
        TemporalTransformer(TemporalConfig(dropout=1.5))


# Golden values: a fixed seed, config and input must keep giving these numbers. When a change
# to temporal.py alters them on purpose, print the new ones with `python tests/test_temporal.py`.
GOLDEN = [-0.1538, -0.66006, 0.38226, -0.66941, -0.27226, -0.66747, 0.31216, -0.6296,
          -0.44182, -0.72565, 0.28324, -0.66628, -0.47558, -0.70931, 0.22302, -0.77438]


def _golden_output():
    model = _model(num_tokens=0)
    features = torch.sin(torch.arange(4 * 12, dtype=torch.float32).reshape(1, 4, 12))
    tokens, _ = model(features)
    return tokens[0, :, :4].flatten()


def test_golden_output():
    torch.testing.assert_close(_golden_output(), torch.tensor(GOLDEN), atol=1e-4, rtol=1e-4)


if __name__ == "__main__":
    print([round(v, 5) for v in _golden_output().tolist()])
