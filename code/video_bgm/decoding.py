"""Fast decoding steps for the frozen MusicGen decoder (built on transformers' modules and caches).

A sampling step reads every decoder weight once to push one token per row through; with
guidance there are two rows (conditional and null). What keeps a step near that floor:

- CPU, float32: ``pack_linears`` stores each decoder Linear's weight in oneDNN's packed layout
  for the step's row count. The generic GEMM reads the weights about once per row at such tiny
  row counts; the packed kernel reads them once, so guidance costs about one branch.
- ``Stepper`` keeps the self-attention keys/values in buffers allocated once per generation
  (transformers' ``DynamicCache`` concatenates, copying the whole cache every step), and the
  conditioning's cross-attention keys/values are computed at the first step only.
- CUDA: the cache is transformers' ``StaticCache`` (fixed shapes) and the one-token step is
  compiled with CUDA graphs (``torch.compile(mode="reduce-overhead")``), which removes the
  per-step Python and kernel-launch overhead that otherwise leaves the GPU idle.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, EncoderDecoderCache, StaticCache

from . import mapped_pages


def can_pack(model: nn.Module) -> bool:
    """Packed weights need a float32 model on the CPU and a torch built with oneDNN."""
    param = next(model.parameters())
    return (param.device.type == "cpu" and param.dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))


class PackedLinear(nn.Module):
    """A frozen ``nn.Linear`` whose weight lives in oneDNN's packed layout (CPU, float32).

    ``rows`` is the row count the layout is tuned for (any count works). The dense weight is
    released, so packing costs no memory; ``weight`` rebuilds it on demand, and a call that
    needs gradients (MusicGen's training loss, which differentiates w.r.t. its input) uses it.
    """

    def __init__(self, linear: nn.Linear, rows: int):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), rows)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach(), requires_grad=False)

    @property
    def weight(self) -> torch.Tensor:
        return self.packed.to_dense()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            return F.linear(x, self.weight, self.bias)
        # the op's overload itself: its dispatch by name costs microseconds, times ~200 calls a step
        y = torch.ops.mkldnn._linear_pointwise.default(x.reshape(-1, self.in_features), self.packed, self.bias,
                                                       "none", [], "")
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed"


def pack_linears(module: nn.Module, rows: int) -> int:
    """Replace every ``nn.Linear`` under ``module`` with a ``PackedLinear``; returns how many."""
    # Names first, then one layer at a time: each dense weight is freed as soon as its packed copy
    # exists, so packing never holds two copies of the decoder.
    targets = [(parent, name) for parent in module.modules()
               for name, child in parent.named_children() if type(child) is nn.Linear]
    for parent, name in targets:
        linear = getattr(parent, name)
        setattr(parent, name, PackedLinear(linear, rows))
        mapped_pages.release(linear.weight)  # loaded from disk: else the decoder would count twice
    return len(targets)


class PreallocatedLayer(DynamicLayer):
    """A self-attention cache layer that writes into buffers sized once for the whole generation.

    ``keys``/``values`` are views of the filled part, so attention sees exactly what
    ``DynamicLayer`` would give it, without the per-step concatenation.
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        rows, heads, _, dim = key_states.shape
        self._keys = key_states.new_empty(rows, heads, self.capacity, dim)
        self._values = value_states.new_empty(rows, heads, self.capacity, value_states.shape[-1])
        self.is_initialized = True

    def reset(self) -> None:
        super().reset()
        self.length = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache full: {end} positions > capacity {self.capacity}")
        self._keys[:, :, self.length:end] = key_states
        self._values[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values


class Stepper:
    """Runs the decoder one step at a time over a cache sized for ``capacity`` positions.

    ``condition``/``mask``: decoder-space cross-attention inputs for all rows [R, N, D], [R, N].
    Calling it with input ids [R*K, L] returns the last position's logits [R*K, V].
    ``static``: transformers' ``StaticCache`` (fixed shapes, what graph capture needs);
    ``compile`` (CUDA): a static cache and a CUDA-graph-compiled one-token step.
    """

    def __init__(self, decoder: nn.Module, condition: torch.Tensor, mask: torch.Tensor, capacity: int,
                 static: bool = False, compile: bool = False):
        self.decoder, self.condition, self.mask = decoder, condition, mask
        layers = decoder.config.num_hidden_layers
        if static or compile:
            self_cache: Cache = StaticCache(decoder.config, max_cache_len=capacity)
        else:
            self_cache = Cache(layers=[PreallocatedLayer(capacity) for _ in range(layers)])
        self.cache = EncoderDecoderCache(self_cache, DynamicCache())
        self._compiled = torch.compile(self._forward, mode="reduce-overhead", dynamic=False) if compile else None

    def restart(self, condition: torch.Tensor, mask: torch.Tensor) -> None:
        """Start a new generation with same-shaped conditioning, keeping the buffers (and with them
        the captured graphs, which read these exact tensors)."""
        self.cache.reset()
        self.condition.copy_(condition)
        self.mask.copy_(mask)

    def _forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.decoder(input_ids=input_ids, encoder_hidden_states=self.condition,
                           encoder_attention_mask=self.mask, cache=self.cache, use_cache=True)
        return out.logits[:, -1]

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self._compiled is None or input_ids.shape[-1] != 1:  # the first (multi-token) step runs eagerly
            return self._forward(input_ids)
        try:
            return self._compiled(input_ids).clone()  # CUDA-graph outputs are overwritten by the next replay
        except Exception as err:  # a compiler failure must not cost the user their generation
            warnings.warn(f"compiled decoding step failed ({type(err).__name__}: {err}); continuing without it")
            self._compiled = None
            return self._forward(input_ids)
