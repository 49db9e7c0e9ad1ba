"""Hand back the resident pages of weights read from a memory-mapped checkpoint (Linux).

transformers maps safetensors checkpoints into memory. Every page a forward pass has read stays
in the process's resident set for as long as the mapping lives, i.e. as long as any weight of the
file does. Dropping a page (``madvise(MADV_DONTNEED)``) is lossless only for an unmodified page of
a file: whoever touches it again reads the same bytes back (from the page cache, or the disk).
So pages are dropped only where /proc/self/pagemap says every one of them is such a page.
"""

from __future__ import annotations

import ctypes
import mmap
import struct
import sys

import torch
from torch import nn

MADV_DONTNEED = 4  # Linux
_PRESENT, _SWAPPED, _FILE_OR_SHARED = 1 << 63, 1 << 62, 1 << 61  # pagemap entry bits


def release(tensor: torch.Tensor) -> bool:
    """Drop this process's pages of ``tensor``'s storage if they are unmodified pages of a file;
    True if it did. Only pages wholly inside the storage are touched."""
    if not sys.platform.startswith("linux") or tensor.device.type != "cpu":
        return False
    storage = tensor.untyped_storage()
    page = mmap.PAGESIZE
    first = -(-storage.data_ptr() // page) * page
    last = (storage.data_ptr() + storage.nbytes()) // page * page
    if last <= first:
        return False
    count = (last - first) // page
    try:
        with open("/proc/self/pagemap", "rb") as pagemap:
            pagemap.seek(first // page * 8)
            entries = struct.unpack(f"{count}Q", pagemap.read(count * 8))
    except (OSError, struct.error):
        return False
    if any(e & _SWAPPED or (e & _PRESENT and not e & _FILE_OR_SHARED) for e in entries):
        return False  # a private page (modified, or anonymous memory): its bytes exist nowhere else
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), MADV_DONTNEED) == 0


def release_module(module: nn.Module) -> int:
    """``release`` every parameter and buffer of ``module``; returns how many were released."""
    return sum(release(t) for t in (*module.parameters(), *module.buffers()))
