"""The tools run end to end and write what they promise."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import bench  # noqa: E402
import calibrate  # noqa: E402
import path_figure  # noqa: E402
import profile_sparsify  # noqa: E402


def test_path_figure_writes_png(tmp_path, capsys):
    output = path_figure.main(["--photo", "chelsea", "--size", "24", "--sparsities", "0.2,0.5", "--output",
                               str(tmp_path / "path.png")])  # fmt: skip
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "| independent | 0.5 |" in printed and "| joint | 0.2 |" in printed


def test_calibrate_writes_table_with_baselines(tmp_path, capsys):
    output = tmp_path / "cal"
    rows = calibrate.main(["--size", "8", "--count", "3", "--grid", "scale=100;nu=1;momentum=0.9", "--config",
                           "scale=30,nu=1,momentum=0.9", "--cache-dir", str(tmp_path),
                           "--output", str(output)])  # fmt: skip
    names = [r["name"] for r in rows]
    assert names[:2] == ["baseline: input unchanged", "baseline: largest-jump edges"]
    identity = rows[0]
    assert identity["rel"] == 1.0 and identity["rel_worst"] == 1.0
    assert any("scale=30" in n for n in names) and any("scale=100" in n for n in names)
    table = output.with_suffix(".md").read_text()
    assert table.count("\n| ") >= 5 and output.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert list(tmp_path.glob("ref_8_3_*.pt")), "the reference outputs are cached"
    again = calibrate.main(["--size", "8", "--count", "3", "--grid", "", "--cache-dir", str(tmp_path), "--output",
                            str(output)])  # fmt: skip
    assert again[0] == identity


def test_bench_prints_every_provider(tmp_path, capsys):
    csv_path = tmp_path / "bench.csv"
    rows = bench.main(["--sizes", "32", "--batch", "4", "--repeat", "1", "--csv", str(csv_path)])
    providers = {r["provider"] for r in rows}
    assert {
        "skimage denoise_tv_chambolle (100 it)",
        "isvs torch backend (defaults)",
        "of which projection",
    } <= providers
    assert all(r["images_per_s"] > 0 for r in rows)
    assert csv_path.read_text().count("\n") == len(rows) + 1


def test_bench_on_cuda_needs_a_gpu(capsys):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the message of one without is not reachable")
    with pytest.raises(SystemExit) as error:
        bench.main(["--device", "cuda", "--csv", ""])
    assert error.value.code == 2 and "needs a CUDA GPU" in capsys.readouterr().err


def test_profile_sparsify_prints_wall_time_and_operations(capsys):
    profile_sparsify.main(["--device", "cpu", "--settings", "16:4", "--rows", "3"])
    out = capsys.readouterr().out
    assert "16x16x3 B=4, sparsity 0.6: wall" in out and "ms per call" in out and "aten::" in out
