"""Fast decoding steps for the frozen MusicGen decoder (built on transformers' modules and caches).

A sampling step reads every decoder weight once to push one token per row through; with
guidance there are two rows (conditional and null). What keeps a step near that floor:

- CPU, float32: ``use_few_row_kernel`` makes each decoder Linear run ``gemv``'s kernel for a
  step's few rows. BLAS and oneDNN GEMMs stream the weights well below memory bandwidth at such
  row counts (the generic one even reads them about once per row); the kernel reads them once
  for all rows, so guidance costs about one branch.
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

from . import gemv


class FewRowLinear(nn.Linear):
    """A frozen ``nn.Linear`` whose few-row calls (a decoding step) run ``gemv.linear``.

    It holds the original's parameters (nothing is copied, the state dict is unchanged); calls
    the kernel does not take (many rows, gradients, other devices or dtypes) run ``F.linear``.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__(linear.in_features, linear.out_features, bias=linear.bias is not None, device="meta")
        self.weight, self.bias = linear.weight, linear.bias
        self._array, self._array_of = None, None  # the weight's array view, and which storage it views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if gemv.supports(x, self.in_features):
            if self._array_of != self.weight.data_ptr():  # first call, or the weight was moved or replaced
                self._array, self._array_of = gemv.weight_array(self.weight), self.weight.data_ptr()
            if self._array is not None:
                y = gemv.linear(x, self._array)
                return y if self.bias is None else y + self.bias
        return F.linear(x, self.weight, self.bias)


def use_few_row_kernel(module: nn.Module) -> int:
    """Make every plain ``nn.Linear`` under ``module`` a ``FewRowLinear``; returns how many."""
    targets = [(parent, name) for parent in module.modules()
               for name, child in parent.named_children() if type(child) is nn.Linear]
    for parent, name in targets:
        setattr(parent, name, FewRowLinear(getattr(parent, name)))
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

    ``condition``/``mask``: decoder-space cross-attention inputs for all rows [R, N, D] and either
    MusicGen's [R, N] or a time band's additive [R, 1, P, N] for positions 0..P-1 (``time_band``;
    each call then sees the rows of the positions it feeds). Calling it with input ids [R*K, L]
    returns the last position's logits [R*K, V].
    ``static``: transformers' ``StaticCache`` (fixed shapes, what graph capture needs);
    ``compile`` (CUDA): a static cache and a CUDA-graph-compiled one-token step.
    """

    def __init__(self, decoder: nn.Module, condition: torch.Tensor, mask: torch.Tensor, capacity: int,
                 static: bool = False, compile: bool = False):
        self.decoder, self.condition, self.mask = decoder, condition, mask
        self.position = 0  # the decoder position the next input token takes
        # A per-position mask reaches the compiled step through one fixed buffer (its graph reads it).
        self._step_mask = mask[:, :, :1].clone() if mask.dim() == 4 else mask
        gemv.match_torch_threads()
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
        self.position = 0
        self.condition.copy_(condition)
        self.mask.copy_(mask)

    def _forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.decoder(input_ids=input_ids, encoder_hidden_states=self.condition,
                           encoder_attention_mask=mask, cache=self.cache, use_cache=True)
        return out.logits[:, -1]

    def _mask_for(self, length: int) -> torch.Tensor:
        if self.mask.dim() == 2:
            return self.mask
        return self.mask[:, :, self.position:self.position + length]

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[-1]
        mask = self._mask_for(length)
        self.position += length
        if self._compiled is None or length != 1:  # the first (multi-token) step runs eagerly
            return self._forward(input_ids, mask)
        if mask is not self.mask:
            self._step_mask.copy_(mask)
        try:
            return self._compiled(input_ids, self._step_mask).clone()  # CUDA-graph outputs are overwritten by the next replay
        except Exception as err:  # a compiler failure must not cost the user their generation
            warnings.warn(f"compiled decoding step failed ({type(err).__name__}: {err}); continuing without it")
            self._compiled = None
            return self._forward(input_ids, mask)
