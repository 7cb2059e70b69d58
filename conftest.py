"""Kernels run in Triton's CPU interpreter unless ISVS_TEST_GPU=1: the choice must be made before triton is first
imported (``triton.jit`` decides at decoration time), so it lives here, above both test folders."""

import os

if os.environ.get("ISVS_TEST_GPU", "0") == "0":
    os.environ["TRITON_INTERPRET"] = "1"
