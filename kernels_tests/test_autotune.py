"""tools/autotune.py and the tuned-configuration lookup of the launcher."""

import json

import pytest
import torch

from isvs_triton.config import FAST  # noqa: E402
from isvs_triton.ops.lbi import triton_fused, triton_launch  # noqa: E402
from isvs_triton.ops.lbi.path import PathState, stop_rule  # noqa: E402
from tools import autotune


def test_dry_run_prints_the_search_space(capsys):
    assert autotune.main(["--dry-run", "--sizes", "32", "--batches", "8"]) == 0
    out = capsys.readouterr().out
    assert f"{len(autotune.search_space())} candidates" in out
    assert "32x32:joint:momentum" in out and "32x32:independent:plain" in out
    assert "persistent or per-iteration" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a GPU")
def test_without_gpu_says_so_and_exits_2(capsys):
    assert autotune.main(["--sizes", "32", "--batches", "8"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().out


def test_tuned_configs_are_read_by_gpu_name(tmp_path, monkeypatch):
    monkeypatch.setattr(triton_launch, "CONFIG_DIR", tmp_path)
    triton_fused.tuned_configs.cache_clear()
    launch = {"BLOCK_H": 8, "BLOCK_W": 64, "num_warps": 2}
    key = triton_fused.config_key(32, 32, False, True)
    triton_fused.config_file("NVIDIA H100 80GB HBM3").write_text(json.dumps({"lbi_step": {key: launch}}))
    assert triton_fused.tuned_configs("NVIDIA H100 80GB HBM3") == {key: launch}
    assert triton_fused.tuned_configs("NVIDIA A100-SXM4-40GB") == {}
    triton_fused.tuned_configs.cache_clear()


def test_persistent_choice_follows_size_and_tuning(monkeypatch):
    cpu = torch.device("cpu")
    assert triton_fused.use_persistent(32, 32, False, True, cpu)
    assert not triton_fused.use_persistent(triton_fused.PERSISTENT_MAX_SIDE + 1, 8, False, True, cpu)
    monkeypatch.setattr(
        triton_fused, "launch_config", lambda *args: {**triton_fused.DEFAULT_LAUNCH, "persistent": False}
    )
    assert not triton_fused.use_persistent(32, 32, False, True, cpu)


@pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "stepped"])
@pytest.mark.parametrize(
    "launch", autotune.search_space()[::9], ids=lambda c: "{BLOCK_H}x{BLOCK_W}w{num_warps}".format(**c)
)
def test_every_tile_shape_gives_the_same_iterations(launch, persistent):
    """Three iterations from a state in mid-path with a tuned tile shape equal those with the default: the kernels
    are tile-shape independent."""
    torch.manual_seed(1)
    x = torch.rand(2, 3, 13, 21)
    start = PathState.zeros(x, momentum=True)
    for t in start.tensors():  # z straddling the threshold
        t.normal_(0, 1)
    never = stop_rule(x * FAST.scale, 0.6, False, None)
    never.need += 10**6  # never reached: every image runs to max_iter
    ends = []
    for cfg in (triton_fused.DEFAULT_LAUNCH, launch):
        state = PathState(
            *(t.clone() for t in start.tensors()[:3]), tuple(t.clone() for t in start.prev), start.iterations.clone()
        )
        triton_fused.advance(state, x * FAST.scale, never, FAST.replace(max_iter=3), False, persistent, cfg)
        ends.append(state)
    assert ends[0].iterations.tolist() == [3, 3]
    for a, b in zip(ends[0].tensors(), ends[1].tensors()):
        assert torch.equal(a, b)
