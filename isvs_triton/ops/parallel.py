"""Threads for the compiled CPU loops (numba, ``nogil``): one pool per process, as many threads as torch uses.

A plain thread pool rather than numba's own parallel layer: it is safe to call from several threads and in
DataLoader worker processes (where torch uses one thread, so the work runs inline).

``cores_to_compiled_loops`` gives a backend call's cores to these loops: torch's OpenMP workers spin for a while after
each parallel operation (libgomp's default wait policy), on the very cores the loops' threads then need, and the
host's few torch operations over the batch between two compiled loops would wake them every time. Inside the scope
the calling thread's torch operations run on one thread, so they wake nobody; ``in_parallel`` still uses the thread
count torch had. The count is set by the ``omp_set_num_threads`` of the OpenMP library torch loaded, which sets the
calling thread's own count only (``torch.set_num_threads`` would also change the count every thread that first uses
torch meanwhile starts with). docs/performance.md has what it is worth.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, threads, pool): a forked child makes its own
_scope = threading.local()  # .threads: torch's thread count where this thread entered cores_to_compiled_loops


def _openmp_set_num_threads() -> Callable[[int], None] | None:
    """``omp_set_num_threads`` of the OpenMP library beside torch's own (libgomp, libomp, libiomp), or None where
    torch's parallel backend is not OpenMP (its native pool's workers wait without spinning) or none is found."""
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    root = Path(torch.__file__).parent
    folders = (root / "lib", root.parent / "torch.libs")  # the wheel's own libraries; auditwheel's copies
    names = ("libgomp*", "libomp*", "libiomp*")  # GNU, LLVM, Intel
    for library in sorted(path for folder in folders for name in names for path in folder.glob(name)):
        try:
            return ctypes.CDLL(str(library)).omp_set_num_threads
        except (OSError, AttributeError):
            continue
    return None


_set_openmp_threads = _openmp_set_num_threads()


def _executor(threads: int) -> ThreadPoolExecutor:
    global _pool
    if _pool is None or _pool[:2] != (os.getpid(), threads):
        _pool = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="isvs"))
    return _pool[2]


@contextmanager
def cores_to_compiled_loops() -> Iterator[None]:
    """Within: this thread's torch operations run on one thread; ``in_parallel`` keeps torch's thread count."""
    threads = torch.get_num_threads()
    if _set_openmp_threads is None or threads == 1 or getattr(_scope, "threads", None):  # nothing to give
        yield
        return
    _set_openmp_threads(1)
    if torch.get_num_threads() != 1:  # not the library torch counts its threads with: leave it as it was
        _set_openmp_threads(threads)
        yield
        return
    _scope.threads = threads
    try:
        yield
    finally:
        _set_openmp_threads(threads)
        _scope.threads = None


def in_parallel(fn: Callable[[np.ndarray], None], count: int) -> None:
    """Call ``fn(indices)`` on interleaved shares of range(count), one share per thread, and wait for all.

    Interleaved (0, T, 2T, ... for the first thread) so that slow items spread evenly rather than in one share."""
    threads = max(1, min(getattr(_scope, "threads", None) or torch.get_num_threads(), count))
    if threads == 1:
        fn(np.arange(count))
        return
    shares = [np.arange(start, count, threads) for start in range(threads)]
    for future in [_executor(threads).submit(fn, share) for share in shares]:
        future.result()
