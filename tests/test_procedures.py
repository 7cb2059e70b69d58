"""The procedure registry (train/procedures.py): one entry is all a new procedure needs."""

import pytest
import torch

from isvs_triton.train import parse_args, procedures
from isvs_triton.train.smoother import Smoother


@pytest.fixture
def inverted():
    """A toy baseline registered for one test: it trains on inverted images."""
    procedure = procedures.register(
        procedures.Procedure(
            "invert",
            "1 - x",
            smoothed_at_test=False,
            transform=lambda config, x, epoch, index: 1 - x,
        )
    )
    yield procedure
    del procedures.REGISTRY[procedure.name]


def test_one_entry_is_accepted_by_the_settings_and_applied_by_the_loop(inverted):
    config = parse_args(["--procedure", "invert", "--epochs", "2"])
    assert config.sparsity_at(0) is None and config.total_epochs == 2
    x = torch.rand(3, 3, 8, 8)
    out = Smoother(config, 3, 8).train_batch(x, 0, torch.arange(3))
    assert torch.equal(out, 1 - x)


def test_unknown_procedures_are_refused_with_the_registry_as_the_list():
    with pytest.raises(ValueError, match=r"unknown --procedure 'curriculum'; accepted: \['standard', 'fixed'"):
        parse_args(["--procedure", "curriculum"])


def test_the_registry_decides_schedules_and_epochs():
    iterative = parse_args(["--procedure", "iterative", "--epochs", "5", "--schedule", "0.2,0.4,0.6"])
    assert [iterative.sparsity_at(e) for e in range(5)] == [0.2, 0.2, 0.4, 0.4, 0.6]
    assert iterative.test_sparsity == 0.6
    finetune = parse_args(["--procedure", "finetune", "--epochs", "3", "--finetune-epochs", "2", "--sparsity", "0.5"])
    assert finetune.total_epochs == 5 and [finetune.sparsity_at(e) for e in range(5)] == [None] * 3 + [0.5] * 2
    assert procedures.get("finetune").epoch_split({"epochs": 12}) == {"epochs": 9, "finetune_epochs": 3}
    assert procedures.BASELINES == ("blur", "lowpass", "tv", "noise")
    assert all(not procedures.get(name).smoothed_at_test for name in procedures.BASELINES)
    with pytest.raises(ValueError, match="registered twice"):
        procedures.register(procedures.Procedure("fixed", "again"))
