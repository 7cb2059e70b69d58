"""Kernel tests run the Triton kernels on the CPU through the interpreter: it must be on before triton is imported."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
