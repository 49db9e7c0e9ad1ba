"""A matrix product for a handful of rows that reads the weight matrix once (CPU, float32).

A decoding step pushes one token per row through each decoder Linear: two rows with guidance
(conditional and null), a few more with variations. That is a matrix-vector product, bound by
how fast the weights stream from memory. BLAS and oneDNN GEMMs tile for many rows and, at
two rows, stream the weights at well below the bandwidth a plain read reaches; this kernel
walks each weight row once, multiplying it into every input row while it sits in L1, with
the output rows split over the cores (numba, compiled on first use and cached on disk).
"""

from __future__ import annotations

import threading

import numba
import numpy as np
import torch

# Above this many rows the weights are reread from L1 often enough that a tiled GEMM wins
# (measured on 2 AVX2 cores against oneDNN's packed GEMM: ahead at 2-4 rows, level at 8, behind
# from 16).
MAX_ROWS = 8

# numba's fallback threading layer (when neither OpenMP nor TBB is found) aborts the process on
# kernel launches from two threads at once; the Gradio app generates in worker threads.
_launch = threading.Lock()


def _compiled(fn):
    options = dict(parallel=True, fastmath=True, boundscheck=False, nogil=True)
    try:
        return numba.njit(cache=True, **options)(fn)
    except RuntimeError:  # no writable folder for numba's cache: compile in each process instead
        return numba.njit(**options)(fn)


@_compiled
def _rows_times_weight_t(x, weight):  # x [R, I], weight [O, I] -> [R, O]
    out = np.empty((x.shape[0], weight.shape[0]), np.float32)
    for o in numba.prange(weight.shape[0]):
        for r in range(x.shape[0]):
            acc = np.float32(0.0)
            for i in range(x.shape[1]):
                acc += weight[o, i] * x[r, i]
            out[r, o] = acc
    return out


def weight_array(weight: torch.Tensor) -> np.ndarray | None:
    """The weight as the array ``linear`` takes (a view, no copy), or None if it cannot serve:
    only a float32, contiguous CPU weight can."""
    if weight.device.type != "cpu" or weight.dtype != torch.float32 or not weight.is_contiguous():
        return None
    return weight.detach().numpy()


def supports(x: torch.Tensor, in_features: int) -> bool:
    """Whether ``linear`` takes ``x``: CPU float32, at most ``MAX_ROWS`` rows, nothing to
    differentiate (the kernel has no backward)."""
    return (x.dtype is torch.float32 and not x.requires_grad and x.device.type == "cpu"
            and x.numel() <= MAX_ROWS * in_features)


def linear(x: torch.Tensor, weight: np.ndarray) -> torch.Tensor:
    """``F.linear(x, weight)`` for an ``x`` that ``supports`` takes; [..., I] -> [..., O]. The
    wrapping around the kernel costs about 3 us a call at musicgen-small's sizes (~200 a step)."""
    with _launch:
        out = _rows_times_weight_t(x.reshape(-1, x.shape[-1]).numpy(), weight)
    return torch.from_numpy(out).view(*x.shape[:-1], weight.shape[0])


def match_torch_threads() -> None:
    """Use as many cores as torch does in this thread (``torch.set_num_threads``)."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
