"""With ISVS_TEST_GPU=1 every tensor a kernel test makes lands on the GPU (the torch backend it is compared with
runs there too); otherwise the root conftest.py has set TRITON_INTERPRET=1 and the kernels run on CPU tensors."""

import os

import pytest
import torch

ON_GPU = os.environ.get("ISVS_TEST_GPU", "0") != "0"


@pytest.fixture(autouse=True)
def _device():
    if not ON_GPU:
        yield
        return
    if not torch.cuda.is_available():
        pytest.fail("ISVS_TEST_GPU=1 but torch sees no CUDA GPU")
    torch.set_default_device("cuda")
    yield
    torch.set_default_device(None)
