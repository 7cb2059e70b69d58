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
    """``omp_set_num_threads`` of the OpenMP library torch counts its threads with (libgomp, libomp or libiomp in
    torch's folders: a count set there must be the one ``torch.get_num_threads()`` reads), or None where torch's
    parallel backend is not OpenMP (its native pool's workers wait without spinning) or no such library is found."""
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    root = Path(torch.__file__).parent
    folders = (root / "lib", root.parent / "torch.libs")  # the wheel's own libraries; auditwheel's copies
    names = ("libgomp*", "libomp*", "libiomp*")  # GNU, LLVM, Intel
    threads = torch.get_num_threads()
    for library in sorted(path for folder in folders for name in names for path in folder.glob(name)):
        try:
            set_threads = ctypes.CDLL(str(library)).omp_set_num_threads
        except (OSError, AttributeError):
            continue
        set_threads(threads + 1)  # a count unlike torch's, so that reading it proves the library is torch's
        counted = torch.get_num_threads() == threads + 1
        set_threads(threads)
        if counted:
            return set_threads
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
