"""Counter-based random numbers: draws that are a function of (seed, epoch, image index) alone, so that what happens
to an image (its augmentation, its noise, its attack's start) does not depend on the batch it lands in, the number of
processes, or the RNG state after a resume."""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """An integer hash of 32-bit values held in int64 (lowbias32); products wrap, the mask keeps the low 32 bits."""
    x = x & _MASK32
    x = ((x ^ (x >> 16)) * 0x7FEB352D) & _MASK32
    x = ((x ^ (x >> 15)) * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def sample_uniform(index: torch.Tensor, epoch: int, seed: int, count: int) -> torch.Tensor:
    """(B, count) float32 in [0, 1), a function of (seed, epoch, image index) only: an image's augmentation does not
    depend on the batch it lands in, the number of processes, or the RNG state after a resume."""
    key = _hash32(_hash32(torch.tensor(seed, dtype=torch.int64)) ^ epoch) ^ index.to(torch.int64).cpu()
    bits = _hash32(_hash32(key)[:, None] ^ _hash32(torch.arange(1, count + 1)))
    return (bits >> 8).float() / 2**24  # 24 bits: exact in float32, so never 1.0
