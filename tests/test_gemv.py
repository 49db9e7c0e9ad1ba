"""The few-row matrix product of decoding steps against F.linear."""

import threading

import pytest
import torch
import torch.nn.functional as F

from video_bgm import gemv
from video_bgm.decoding import FewRowLinear


@pytest.mark.parametrize("rows", [1, 2, 5, gemv.MAX_ROWS])
@pytest.mark.parametrize("bias", [False, True])
def test_equals_f_linear(rows, bias):
    g = torch.Generator().manual_seed(rows)
    weight = torch.randn(37, 1031, generator=g)  # sizes no SIMD width divides
    x = torch.randn(rows, 1, 1031, generator=g)  # a step's [R, 1, D] hidden states
    assert gemv.supports(x, 1031)
    got = gemv.linear(x, gemv.weight_array(weight))
    assert got.shape == (rows, 1, 37)
    torch.testing.assert_close(got, F.linear(x, weight), rtol=1e-5, atol=1e-4)
    linear = torch.nn.Linear(1031, 37, bias=bias)
    with torch.no_grad():
        linear.weight.copy_(weight)
        torch.testing.assert_close(FewRowLinear(linear)(x), linear(x), rtol=1e-5, atol=1e-4)


def test_refuses_what_it_does_not_cover():
    assert gemv.supports(torch.randn(gemv.MAX_ROWS, 1, 16), 16)
    assert not gemv.supports(torch.randn(gemv.MAX_ROWS + 1, 1, 16), 16)
    assert not gemv.supports(torch.randn(2, 16).bfloat16(), 16)
    assert not gemv.supports(torch.randn(2, 16, requires_grad=True), 16)
    assert gemv.weight_array(torch.randn(8, 16)) is not None
    assert gemv.weight_array(torch.randn(8, 16).bfloat16()) is None
    assert gemv.weight_array(torch.randn(16, 8).t()) is None  # not contiguous


def test_few_row_linear_follows_its_weight():
    """A weight changed in place, or replaced, is what the next call uses."""
    linear = torch.nn.Linear(16, 8, bias=False)
    swapped, x = FewRowLinear(linear), torch.randn(2, 16)
    with torch.no_grad():
        swapped(x)
        linear.weight.mul_(2)
        torch.testing.assert_close(swapped(x), F.linear(x, linear.weight))
        swapped.weight = torch.nn.Parameter(torch.randn(8, 16))
        torch.testing.assert_close(swapped(x), F.linear(x, swapped.weight))


def test_few_row_linear_falls_back_and_keeps_gradients():
    linear = torch.nn.Linear(16, 8)
    swapped = FewRowLinear(linear)
    assert swapped.weight is linear.weight and swapped.bias is linear.bias
    many = torch.randn(3, 7, 16)  # 21 rows: F.linear
    torch.testing.assert_close(swapped(many), linear(many))
    x = torch.randn(2, 16, requires_grad=True)
    swapped(x).sum().backward()
    torch.testing.assert_close(x.grad, linear.weight.sum(0).expand(2, 16))


def test_concurrent_calls_from_threads():
    """The Gradio app generates in worker threads; launches from two at once must not clash."""
    weight, x = torch.randn(512, 256), torch.randn(2, 256)
    expected, array = F.linear(x, weight), gemv.weight_array(weight)
    errors = []

    def work():
        for _ in range(50):
            if not torch.allclose(gemv.linear(x, array), expected, rtol=1e-5, atol=1e-4):
                errors.append("wrong result")

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
