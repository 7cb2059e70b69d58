"""Threads for the compiled CPU loops (numba, ``nogil``): one pool per process, as many threads as torch uses.

A plain thread pool rather than numba's own parallel layer: it is safe to call from several threads and in
DataLoader worker processes (where torch uses one thread, so the work runs inline)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, threads, pool): a forked child makes its own


def _executor(threads: int) -> ThreadPoolExecutor:
    global _pool
    if _pool is None or _pool[:2] != (os.getpid(), threads):
        _pool = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="isvs"))
    return _pool[2]


def in_parallel(fn: Callable[[np.ndarray], None], count: int) -> None:
    """Call ``fn(indices)`` on interleaved shares of range(count), one share per thread, and wait for all.

    Interleaved (0, T, 2T, ... for the first thread) so that slow items spread evenly rather than in one share."""
    threads = max(1, min(torch.get_num_threads(), count))
    if threads == 1:
        fn(np.arange(count))
        return
    shares = [np.arange(start, count, threads) for start in range(threads)]
    for future in [_executor(threads).submit(fn, share) for share in shares]:
        future.result()
